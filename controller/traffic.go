package controller

import (
	"sync"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/selection"
)

// trafficLog remembers, per variant, what the requests it served asked for
// (the tightest latency target, the highest accuracy floor, whether any
// named the variant itself) over the last one to two windows, and the
// loads selection could not place, per hardware class. The model
// autoscaler reads it: a replacement variant must meet what the traffic
// asked for. One short lock per query.
type trafficLog struct {
	window time.Duration

	mu       sync.Mutex
	cur      map[string]autoscale.Traffic
	prev     map[string]autoscale.Traffic
	rotated  time.Time
	unplaced map[string]int
}

func newTrafficLog(window time.Duration) *trafficLog {
	return &trafficLog{window: window, cur: map[string]autoscale.Traffic{}, prev: map[string]autoscale.Traffic{}, unplaced: map[string]int{}}
}

// note records a decision: the variant that serves the request and the
// request's requirements, and the class of a load that fit no worker.
func (t *trafficLog) note(now time.Time, s *selection.Snapshot, r *selection.Request, d *selection.Decision) {
	if d.Variant < 0 && d.Unplaced < 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	if d.Variant >= 0 {
		name := s.Variant(d.Variant).Name
		e, seen := t.cur[name]
		t.cur[name] = merge(e, seen, autoscale.Traffic{LatencyMs: r.LatencyMs, MinAccuracy: r.MinAccuracy, Pinned: r.Kind == selection.KindVariant})
	}
	if d.Unplaced >= 0 {
		t.unplaced[s.Variant(d.Unplaced).Hardware]++
	}
}

// rotate starts a new window when the current one is over. Call with mu held.
func (t *trafficLog) rotate(now time.Time) {
	switch {
	case t.rotated.IsZero():
		t.rotated = now
	case now.Sub(t.rotated) >= 2*t.window:
		clear(t.prev)
		clear(t.cur)
		t.rotated = now
	case now.Sub(t.rotated) >= t.window:
		t.prev, t.cur = t.cur, t.prev
		clear(t.cur)
		t.rotated = now
	}
}

// merge folds b into a (seen: a holds something).
func merge(a autoscale.Traffic, seen bool, b autoscale.Traffic) autoscale.Traffic {
	if !seen {
		return b
	}
	if b.LatencyMs > 0 && (a.LatencyMs == 0 || b.LatencyMs < a.LatencyMs) {
		a.LatencyMs = b.LatencyMs
	}
	a.MinAccuracy = max(a.MinAccuracy, b.MinAccuracy)
	a.Pinned = a.Pinned || b.Pinned
	return a
}

// snapshot returns the traffic of the last one to two windows, and the
// unplaced loads since the last call (which it resets).
func (t *trafficLog) snapshot(now time.Time) (map[string]autoscale.Traffic, map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	out := make(map[string]autoscale.Traffic, len(t.cur)+len(t.prev))
	for _, m := range []map[string]autoscale.Traffic{t.prev, t.cur} {
		for k, v := range m {
			e, seen := out[k]
			out[k] = merge(e, seen, v)
		}
	}
	un := t.unplaced
	t.unplaced = map[string]int{}
	return out, un
}
