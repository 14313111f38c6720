package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/infaas/infaas/api"
	"github.com/infaas/infaas/events"
)

// eventServer serves a real api.Management backed by log.
func eventServer(t *testing.T, log *events.Log) *Client {
	t.Helper()
	mux := http.NewServeMux()
	(&api.Management{Events: log}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return New(srv.URL)
}

func appendN(l *events.Log, n int, e events.Event) {
	for range n {
		l.Append(e)
	}
}

func TestEvents(t *testing.T) {
	log := events.NewLog(5000, nil)
	appendN(log, 3, events.Event{Source: "monitor", Action: "interfered", Variant: "a"})
	appendN(log, 2, events.Event{Source: "model-autoscaler", Action: "replicate", Variant: "a",
		Numbers: map[string]float64{"demand_qps": 120}})
	c := eventServer(t, log)
	ctx := context.Background()

	es, next, err := c.Events(ctx, 0, EventFilter{})
	if err != nil || len(es) != 5 || next != 5 {
		t.Fatalf("all: %d events, next %d, %v", len(es), next, err)
	}
	es, next, err = c.Events(ctx, 2, EventFilter{Source: "model-autoscaler", Action: "replicate", Variant: "a"})
	if err != nil || len(es) != 2 || es[0].Seq != 4 || es[0].Numbers["demand_qps"] != 120 || next != 5 {
		t.Fatalf("filtered: %+v, next %d, %v", es, next, err)
	}

	// More than a page: asking again with next reads the rest.
	appendN(log, api.DefaultEventLimit+10, events.Event{Source: "monitor", Action: "cleared"})
	var all []events.Event
	for since := uint64(0); ; {
		es, next, err := c.Events(ctx, since, EventFilter{Action: "cleared"})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
		if next <= since {
			break
		}
		since = next
	}
	if len(all) != api.DefaultEventLimit+10 || all[0].Seq != 6 {
		t.Fatalf("paged %d events from seq %d", len(all), all[0].Seq)
	}
}

func TestEventsServerError(t *testing.T) {
	c := eventServer(t, events.NewLog(10, nil))
	var e *Error
	if _, _, err := c.Events(context.Background(), 0, EventFilter{}); err != nil {
		t.Fatal(err)
	}
	c.base += "/nowhere"
	if _, _, err := c.Events(context.Background(), 0, EventFilter{}); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("err %v, want HTTP 404", err)
	}
	if err := c.Follow(context.Background(), 0, EventFilter{}, func(events.Event) error { return nil }); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("follow err %v, want HTTP 404", err)
	}
}

func TestFollow(t *testing.T) {
	log := events.NewLog(100, nil)
	log.Append(events.Event{Source: "monitor", Action: "interfered", Variant: "a"})
	log.Append(events.Event{Source: "model-autoscaler", Action: "replicate", Variant: "a"})
	c := eventServer(t, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var got []events.Event
	stop := errors.New("stop")
	err := c.Follow(ctx, 0, EventFilter{Source: "model-autoscaler"}, func(e events.Event) error {
		got = append(got, e)
		switch len(got) {
		case 1: // the kept event; append a new one while the stream is open
			log.Append(events.Event{Source: "monitor", Action: "cleared", Variant: "a"})
			log.Append(events.Event{Source: "model-autoscaler", Action: "switch", From: "a", Variant: "b"})
			return nil
		}
		return stop
	})
	if !errors.Is(err, stop) || len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 4 || got[1].From != "a" {
		t.Fatalf("got %v after %+v", err, got)
	}

	// Cancelling ctx ends a stream that waits for events.
	done := make(chan error)
	since := log.LastSeq()
	go func() {
		done <- c.Follow(ctx, since, EventFilter{}, func(events.Event) error { cancel(); return nil })
	}()
	log.Append(events.Event{Source: "controller", Action: "failed"})
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}

	// Closing the log (the server shutting down) ends it too.
	since = log.LastSeq()
	go func() {
		done <- c.Follow(context.Background(), since, EventFilter{}, func(events.Event) error { return nil })
	}()
	log.Close()
	if err := <-done; !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("err %v, want ErrStreamEnded", err)
	}
}
