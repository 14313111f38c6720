package events

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"time"
)

// Event is one action the system took on its own, with why.
type Event struct {
	Seq          uint64             `json:"seq"`     // assigned by Log.Append, increasing from 1
	Time         time.Time          `json:"time"`    // set by Append when zero
	Source       string             `json:"source"`  // "model-autoscaler", "cluster-autoscaler", "monitor", "controller", "kubernetes"
	Action       string             `json:"action"`  // "replicate", "switch", "downgrade", "unload", "add-worker", "drain-worker", "remove-worker", "interfered", "overloaded", "cleared", "failed"
	Reason       string             `json:"reason"`  // a short stable word for metrics: "demand-near-capacity", "idle", "interference", "placement-failed"
	Message      string             `json:"message"` // a sentence for people, with the numbers behind the decision
	Architecture string             `json:"architecture,omitempty"`
	Variant      string             `json:"variant,omitempty"`
	From         string             `json:"from,omitempty"` // the variant replaced, for a switch
	Worker       string             `json:"worker,omitempty"`
	Class        string             `json:"class,omitempty"`   // hardware class, e.g. of a worker added
	Numbers      map[string]float64 `json:"numbers,omitempty"` // demand_qps, capacity_qps, cost_replicate, cost_switch, …
}

// String renders e on one line for people:
//
//	15:04:05.000 model-autoscaler replicate resnet18-fp32-b8 on w2: <message>
//
// A switch reads "from -> variant"; an event about a worker alone names
// the worker; a class follows in parentheses. The time is printed as e
// carries it (convert with Time.Local first to show the reader's zone).
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Time.Format("15:04:05.000"))
	for _, s := range []string{e.Source, e.Action} {
		if s != "" {
			b.WriteString(" " + s)
		}
	}
	subject := e.Variant
	if subject == "" {
		subject = e.Architecture
	}
	if e.From != "" {
		subject = e.From + " -> " + subject
	}
	switch {
	case subject != "" && e.Worker != "":
		subject += " on " + e.Worker
	case subject == "":
		subject = e.Worker
	}
	if subject != "" {
		b.WriteString(" " + subject)
	}
	if e.Class != "" {
		b.WriteString(" (" + e.Class + ")")
	}
	msg := e.Message
	if msg == "" {
		msg = e.Reason
	}
	if msg != "" {
		b.WriteString(": " + msg)
	}
	return b.String()
}

// Filter selects events by exact match of its fields; an empty field
// matches every event.
type Filter struct {
	Source, Action, Variant string
}

// Match reports whether e passes f.
func (f Filter) Match(e Event) bool {
	return (f.Source == "" || f.Source == e.Source) &&
		(f.Action == "" || f.Action == e.Action) &&
		(f.Variant == "" || f.Variant == e.Variant)
}

// Apply returns the events of es that pass f, in order.
func (f Filter) Apply(es []Event) []Event {
	if f == (Filter{}) {
		return es
	}
	out := es[:0:0]
	for _, e := range es {
		if f.Match(e) {
			out = append(out, e)
		}
	}
	return out
}

// DefaultCapacity is the bound NewLog uses for a capacity below 1.
const DefaultCapacity = 1000

// Log is a bounded ring of events, the newest kept: appending to a full
// log drops the oldest. It is safe for concurrent use; readers get copies.
type Log struct {
	onAppend func(Event)

	mu     sync.Mutex
	ring   []Event // len == capacity; ring[(head+i)%cap] is the i-th oldest
	head   int
	n      int
	seq    uint64        // the last Seq assigned
	grown  chan struct{} // closed and replaced by each Append; left closed by Close
	closed bool
}

// ErrClosed is Wait's answer once the log is closed and holds nothing newer.
var ErrClosed = errors.New("event log closed")

// NewLog returns an empty log keeping the newest capacity events
// (DefaultCapacity if capacity < 1). onAppend, when not nil, is called
// with each appended event, outside the log's lock, on the appending
// goroutine (e.g. to count it in a metric); it must not block for long.
func NewLog(capacity int, onAppend func(Event)) *Log {
	if capacity < 1 {
		capacity = DefaultCapacity
	}
	return &Log{onAppend: onAppend, ring: make([]Event, capacity), grown: make(chan struct{})}
}

// Cap is the number of events the log keeps.
func (l *Log) Cap() int { return len(l.ring) }

// Append records e, assigning its Seq and, when zero, its Time
// (time.Now; a caller with its own clock, such as the simulator, sets
// Time itself), and returns it as recorded. Waiters are woken. Numbers is
// copied; the events the log hands out share their copy and must not be
// modified.
func (l *Log) Append(e Event) Event {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Numbers = maps.Clone(e.Numbers)
	l.mu.Lock()
	l.seq++
	e.Seq = l.seq
	if l.n < len(l.ring) {
		l.ring[(l.head+l.n)%len(l.ring)] = e
		l.n++
	} else {
		l.ring[l.head] = e
		l.head = (l.head + 1) % len(l.ring)
	}
	if !l.closed {
		close(l.grown)
		l.grown = make(chan struct{})
	}
	l.mu.Unlock()
	if l.onAppend != nil {
		l.onAppend(e)
	}
	return e
}

// LastSeq is the Seq of the newest event appended, 0 before any.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Since returns the kept events with Seq > seq, oldest first: the oldest
// limit of them when limit > 0, all of them otherwise. Events already
// dropped from the ring are gone; the first returned then has a Seq above
// seq+1.
func (l *Log) Since(seq uint64, limit int) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since(seq, limit)
}

func (l *Log) since(seq uint64, limit int) []Event {
	if seq >= l.seq {
		return nil
	}
	skip := 0
	if oldest := l.seq - uint64(l.n) + 1; seq >= oldest {
		skip = int(seq - oldest + 1)
	}
	k := l.n - skip
	if limit > 0 && limit < k {
		k = limit
	}
	return l.copyOut(skip, k)
}

// Last returns the newest n events (fewer when fewer are kept), oldest first.
func (l *Log) Last(n int) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= 0 {
		return nil
	}
	n = min(n, l.n)
	return l.copyOut(l.n-n, n)
}

// copyOut copies k events starting at the skip-th oldest.
func (l *Log) copyOut(skip, k int) []Event {
	if k <= 0 {
		return nil
	}
	out := make([]Event, k)
	for i := range out {
		out[i] = l.ring[(l.head+skip+i)%len(l.ring)]
	}
	return out
}

// Close ends every Wait, now and later, that has nothing newer to return:
// they return ErrClosed. Appends still record. A server calls it when it
// shuts down, so that streams following the log end (http.Server's
// RegisterOnShutdown).
func (l *Log) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.grown)
	}
}

// Wait returns the kept events with Seq > seq, oldest first, blocking
// until there is at least one, ctx ends (it returns ctx's error) or the
// log is closed (ErrClosed).
func (l *Log) Wait(ctx context.Context, seq uint64) ([]Event, error) {
	for {
		l.mu.Lock()
		es, grown, closed := l.since(seq, 0), l.grown, l.closed
		l.mu.Unlock()
		if len(es) > 0 {
			return es, nil
		}
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-grown:
		}
	}
}
