package autoscale

import (
	"sync"
	"time"
)

// TrafficLog remembers, per variant, what the requests it served asked for
// (the tightest latency target, the highest accuracy floor, whether any
// named the variant itself) over the last one to two windows, and the
// loads selection could not place, per hardware class. The model
// autoscaler reads it (State.Traffic, State.Unplaced): a replacement
// variant must meet what the traffic asked for. The controller notes every
// decision (one short lock per query); the simulator does the same.
type TrafficLog struct {
	window time.Duration

	mu       sync.Mutex
	cur      map[string]Traffic
	prev     map[string]Traffic
	rotated  time.Time
	turn     time.Time // rotated + window: until then rotate has nothing to do
	unplaced map[string]int
	// last is the latest variant noted and what it asked, while the
	// current window holds it: most decisions repeat it, and they need
	// no map at all. rotate forgets it.
	last     string
	lastWant Traffic
}

// NewTrafficLog remembers one to two windows of traffic.
func NewTrafficLog(window time.Duration) *TrafficLog {
	return &TrafficLog{window: window, cur: map[string]Traffic{}, prev: map[string]Traffic{}, unplaced: map[string]int{}}
}

// Note records one decision: variant (when not "") serves a request that
// asked for want, and a load of class unplacedClass (when not "") fit no
// worker.
func (t *TrafficLog) Note(now time.Time, variant string, want Traffic, unplacedClass string) {
	if variant == "" && unplacedClass == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	if variant != "" && (variant != t.last || want != t.lastWant) {
		// Most requests ask what the window has seen already: a lookup,
		// not a store (the simulator notes every query too).
		old, ok := t.cur[variant]
		if merged := old.Merge(want); !ok || merged != old {
			t.cur[variant] = merged
		}
		t.last, t.lastWant = variant, want
	}
	if unplacedClass != "" {
		t.unplaced[unplacedClass]++
	}
}

// rotate starts a new window when the current one is over. Call with mu held.
func (t *TrafficLog) rotate(now time.Time) {
	if t.rotated.IsZero() {
		t.rotated, t.turn = now, now.Add(t.window)
		return
	}
	if now.Before(t.turn) {
		return
	}
	if now.Sub(t.rotated) >= 2*t.window {
		clear(t.prev)
	} else {
		t.prev, t.cur = t.cur, t.prev
	}
	clear(t.cur)
	t.rotated, t.turn, t.last = now, now.Add(t.window), ""
}

// Snapshot returns the traffic of the last one to two windows, and the
// unplaced loads since the last call (which it resets).
func (t *TrafficLog) Snapshot(now time.Time) (map[string]Traffic, map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	out := make(map[string]Traffic, len(t.cur)+len(t.prev))
	for _, m := range []map[string]Traffic{t.prev, t.cur} {
		for k, v := range m {
			out[k] = out[k].Merge(v)
		}
	}
	un := t.unplaced
	t.unplaced = map[string]int{}
	return out, un
}
