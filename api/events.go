package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/infaas/infaas/events"
)

// Event listing bounds: limit's default and largest value.
const (
	DefaultEventLimit = 1000
	MaxEventLimit     = 10000
)

// EventPage is GET /v1/events's answer without follow: the events after
// since that pass the filters, oldest first, and LastSeq, the since to ask
// with next — the newest event's Seq when the answer holds everything
// newer, the last listed event's when limit cut the list short.
type EventPage struct {
	Events  []events.Event `json:"events"`
	LastSeq uint64         `json:"last_seq"`
}

type eventQuery struct {
	since  uint64
	limit  int
	follow bool
	filter events.Filter
}

const eventParams = "since, limit, source, action, variant, follow"

func parseEventQuery(r *http.Request) (eventQuery, error) {
	q := eventQuery{limit: DefaultEventLimit}
	for k, vs := range r.URL.Query() {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "since":
			if q.since, err = strconv.ParseUint(v, 10, 64); err != nil {
				return q, fmt.Errorf("%w: since=%q: want an event's seq, a whole number from 0", ErrBadRequest, v)
			}
		case "limit":
			if q.limit, err = strconv.Atoi(v); err != nil || q.limit < 1 || q.limit > MaxEventLimit {
				return q, fmt.Errorf("%w: limit=%q: want a whole number from 1 to %d", ErrBadRequest, v, MaxEventLimit)
			}
		case "follow":
			if q.follow, err = strconv.ParseBool(v); err != nil {
				return q, fmt.Errorf("%w: follow=%q: want true or false", ErrBadRequest, v)
			}
		case "source":
			q.filter.Source = v
		case "action":
			q.filter.Action = v
		case "variant":
			q.filter.Variant = v
		default:
			return q, fmt.Errorf("%w: unknown parameter %q (want %s)", ErrBadRequest, k, eventParams)
		}
	}
	return q, nil
}

// listEvents serves GET /v1/events: a page of events as an EventPage, or
// with follow=true a stream of them as NDJSON, one event a line, the kept
// events after since first, then each new one as it is appended, until
// the client goes away or the log is closed. limit bounds a page, not a
// stream.
func (m *Management) listEvents(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if q.follow {
		m.followEvents(w, r, q)
		return
	}
	// Reading the newest Seq first makes LastSeq exact: every event up to
	// it after since is in es, none after it is listed.
	last := m.Events.LastSeq()
	es := m.Events.Since(q.since, 0)
	for len(es) > 0 && es[len(es)-1].Seq > last {
		es = es[:len(es)-1]
	}
	page := EventPage{Events: q.filter.Apply(es), LastSeq: last}
	if len(page.Events) > q.limit {
		page.Events = page.Events[:q.limit]
		page.LastSeq = page.Events[q.limit-1].Seq
	}
	if page.Events == nil {
		page.Events = []events.Event{}
	}
	writeJSON(w, http.StatusOK, page)
}

func (m *Management) followEvents(w http.ResponseWriter, r *http.Request, q eventQuery) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives any write timeout
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// Flushing the header tells the client the stream has started.
	if err := rc.Flush(); err != nil {
		if m.Log != nil {
			m.Log.Warn("events: cannot stream", "err", err)
		}
		return
	}
	enc := json.NewEncoder(w)
	cursor := q.since
	es := m.Events.Since(cursor, 0)
	for {
		if len(es) > 0 {
			cursor = es[len(es)-1].Seq
		}
		if matched := q.filter.Apply(es); len(matched) > 0 {
			for _, e := range matched {
				if enc.Encode(e) != nil {
					return
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
		var err error
		if es, err = m.Events.Wait(r.Context(), cursor); err != nil {
			return // the client went away or the server is shutting down
		}
	}
}
