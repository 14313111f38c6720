package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/infaas/infaas/api"
	"github.com/infaas/infaas/events"
)

// EventFilter selects events by exact source, action and variant; an
// empty field matches every event.
type EventFilter = events.Filter

// ErrStreamEnded is Follow's answer when the server ends the stream (it is
// shutting down).
var ErrStreamEnded = errors.New("the server ended the event stream")

func eventsPath(since uint64, f EventFilter, follow bool) string {
	q := url.Values{}
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	}
	for k, v := range map[string]string{"source": f.Source, "action": f.Action, "variant": f.Variant} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if follow {
		q.Set("follow", "true")
	}
	if len(q) == 0 {
		return "/v1/events"
	}
	return "/v1/events?" + q.Encode()
}

// Events returns the events after since that pass filter, oldest first —
// at most a page (the server's default, api.DefaultEventLimit) — and the
// since to ask with next: ask again with it until it stops growing to read
// them all.
func (c *Client) Events(ctx context.Context, since uint64, filter EventFilter) ([]events.Event, uint64, error) {
	var p api.EventPage
	_, err := c.do(ctx, http.MethodGet, eventsPath(since, filter, false), "", nil, &p)
	return p.Events, p.LastSeq, err
}

// Follow streams the events after since that pass filter, calling fn with
// each as it arrives: first those the server keeps, then every new one.
// It returns fn's error, ctx's when ctx ends, or ErrStreamEnded when the
// server ends the stream.
func (c *Client) Follow(ctx context.Context, since uint64, filter EventFilter, fn func(events.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+eventsPath(since, filter, true), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("cannot reach the infaas server at %s (start one with `infaas serve`, or point --server / INFAAS_SERVER at it): %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return streamError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var e events.Event
		if err := dec.Decode(&e); err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, io.EOF):
				return ErrStreamEnded
			}
			return fmt.Errorf("read the event stream from %s: %w", c.base, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// streamError reads an error answer's message, as do does.
func streamError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(data))
	}
	return &Error{Status: resp.StatusCode, Message: e.Error}
}
