package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/infaas/infaas/events"
)

// eventServer serves a Management whose only part is log. followDone
// receives once each time a follow request's handler returns.
func eventServer(t *testing.T, log *events.Log) (srv *httptest.Server, followDone chan struct{}) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	mux := http.NewServeMux()
	(&Management{Events: log}).Register(mux)
	followDone = make(chan struct{}, 4)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if r.URL.Query().Get("follow") == "true" {
			followDone <- struct{}{}
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		goleak.VerifyNone(t, ignore)
	})
	return srv, followDone
}

// sampleLog holds five events: seq 1–5.
func sampleLog() *events.Log {
	l := events.NewLog(100, nil)
	for _, e := range []events.Event{
		{Source: "monitor", Action: "interfered", Reason: "interference", Variant: "a", Worker: "w1"},
		{Source: "model-autoscaler", Action: "replicate", Reason: "demand-near-capacity", Variant: "a",
			Numbers: map[string]float64{"demand_qps": 120, "capacity_qps": 95}},
		{Source: "model-autoscaler", Action: "replicate", Reason: "demand-near-capacity", Variant: "b"},
		{Source: "cluster-autoscaler", Action: "add-worker", Reason: "all-busy", Worker: "w3", Class: "c5"},
		{Source: "model-autoscaler", Action: "unload", Reason: "idle", Variant: "b"},
	} {
		l.Append(e)
	}
	return l
}

func getPage(t *testing.T, url string) (int, EventPage, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var p EventPage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
	}
	return resp.StatusCode, p, string(body)
}

func seqsOf(es []events.Event) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func TestEventsList(t *testing.T) {
	srv, _ := eventServer(t, sampleLog())
	tests := []struct {
		name  string
		query string
		want  []uint64
		last  uint64
	}{
		{"all", "", []uint64{1, 2, 3, 4, 5}, 5},
		{"since", "?since=3", []uint64{4, 5}, 5},
		{"since the newest", "?since=5", []uint64{}, 5},
		{"limit cuts, last_seq says where to go on", "?limit=2", []uint64{1, 2}, 2},
		{"limit after since", "?since=1&limit=2", []uint64{2, 3}, 3},
		{"source", "?source=model-autoscaler", []uint64{2, 3, 5}, 5},
		{"action", "?action=replicate", []uint64{2, 3}, 5},
		{"variant", "?variant=b", []uint64{3, 5}, 5},
		{"filters together", "?source=model-autoscaler&variant=b&action=unload", []uint64{5}, 5},
		{"filter with limit", "?source=model-autoscaler&limit=1", []uint64{2}, 2},
		{"no match", "?source=nobody", []uint64{}, 5},
		{"follow=false lists", "?follow=false&since=4", []uint64{5}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, p, body := getPage(t, srv.URL+"/v1/events"+tt.query)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			if got := seqsOf(p.Events); !slicesEqual(got, tt.want) || p.LastSeq != tt.last {
				t.Fatalf("got %v last_seq %d, want %v last_seq %d", got, p.LastSeq, tt.want, tt.last)
			}
			if !strings.Contains(body, `"events": [`) {
				t.Fatalf("events is not a list: %s", body)
			}
		})
	}
	_, p, _ := getPage(t, srv.URL+"/v1/events?since=1&limit=1")
	if e := p.Events[0]; e.Reason != "demand-near-capacity" || e.Numbers["capacity_qps"] != 95 || e.Time.IsZero() {
		t.Fatalf("event decoded as %+v", e)
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEventsBadParameters(t *testing.T) {
	srv, _ := eventServer(t, sampleLog())
	tests := []struct{ query, want string }{
		{"since=-1", "whole number from 0"},
		{"since=x", "whole number from 0"},
		{"limit=0", "from 1 to 10000"},
		{"limit=10001", "from 1 to 10000"},
		{"limit=ten", "from 1 to 10000"},
		{"follow=perhaps", "true or false"},
		{"sort=asc", "want since, limit, source, action, variant, follow"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, _, body := getPage(t, srv.URL+"/v1/events?"+tt.query)
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("not an error answer: %s", body)
			}
			if code != http.StatusBadRequest || !strings.Contains(e.Error, tt.want) {
				t.Fatalf("HTTP %d %q, want 400 saying %q", code, e.Error, tt.want)
			}
		})
	}
}

func TestEventsAbsentWithoutLog(t *testing.T) {
	mux := http.NewServeMux()
	(&Management{}).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/events", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("HTTP %d without a log, want 404", rec.Code)
	}
}

// follow opens a stream and returns a reader of its lines.
func follow(t *testing.T, ctx context.Context, url string) (*http.Response, *bufio.Scanner) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, bufio.NewScanner(resp.Body)
}

func nextEvent(t *testing.T, sc *bufio.Scanner) events.Event {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("stream ended: %v", sc.Err())
	}
	var e events.Event
	if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
		t.Fatalf("line %q: %v", sc.Text(), err)
	}
	return e
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the follow handler did not return")
	}
}

func TestEventsFollow(t *testing.T) {
	log := sampleLog()
	srv, done := eventServer(t, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, sc := follow(t, ctx, srv.URL+"/v1/events?follow=true&since=3&source=model-autoscaler")
	// The stream has started (its header arrived): first the kept events
	// after since, then those appended now; filters apply to both.
	if e := nextEvent(t, sc); e.Seq != 5 {
		t.Fatalf("first streamed seq %d, want 5", e.Seq)
	}
	log.Append(events.Event{Source: "monitor", Action: "cleared", Variant: "a"})
	log.Append(events.Event{Source: "model-autoscaler", Action: "switch", From: "a", Variant: "a2", Reason: "cheaper"})
	if e := nextEvent(t, sc); e.Seq != 7 || e.Action != "switch" || e.From != "a" {
		t.Fatalf("got %+v, want seq 7, the switch", e)
	}
	cancel()
	waitDone(t, done)
	if sc.Scan() {
		t.Fatalf("a line after the client went away: %q", sc.Text())
	}
}

func TestEventsFollowEndsWhenLogCloses(t *testing.T) {
	log := sampleLog()
	srv, done := eventServer(t, log)
	_, sc := follow(t, context.Background(), srv.URL+"/v1/events?follow=true&since=5")
	log.Close()
	waitDone(t, done)
	if sc.Scan() {
		t.Fatalf("unexpected line %q", sc.Text())
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want a clean end", err)
	}
}
