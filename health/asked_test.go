package health

import (
	"testing"
	"time"
)

func TestAskedMerge(t *testing.T) {
	for _, c := range []struct {
		a, b, want Asked
	}{
		{Asked{}, Asked{LatencyMs: 50, MinAccuracy: 90}, Asked{LatencyMs: 50, MinAccuracy: 90}},
		{Asked{LatencyMs: 50}, Asked{LatencyMs: 20}, Asked{LatencyMs: 20}},
		{Asked{LatencyMs: 20}, Asked{LatencyMs: 50}, Asked{LatencyMs: 20}},
		{Asked{LatencyMs: 20}, Asked{}, Asked{LatencyMs: 20}}, // no target is not a tighter one
		{Asked{MinAccuracy: 97}, Asked{MinAccuracy: 90, Pinned: true}, Asked{MinAccuracy: 97, Pinned: true}},
		{Asked{Pinned: true}, Asked{}, Asked{Pinned: true}},
	} {
		if got := c.a.Merge(c.b); got != c.want {
			t.Errorf("%+v merged with %+v = %+v, want %+v", c.a, c.b, got, c.want)
		}
		if got := c.b.Merge(c.a); got != c.want {
			t.Errorf("%+v merged with %+v = %+v, want %+v (merging is symmetric)", c.b, c.a, got, c.want)
		}
	}
}

// TestMonitorAsked: the snapshot holds what the window's requests asked,
// admitted or refused, and forgets it when they leave the window.
func TestMonitorAsked(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	m := NewMonitor(clk.now, 10*time.Second, time.Second)
	m.Admitted(1, Asked{LatencyMs: 100, MinAccuracy: 90})
	clk.advance(3 * time.Second)
	m.Refused(Asked{LatencyMs: 30, Pinned: true})
	m.Admitted(2, Asked{}) // stated nothing: changes nothing
	if got, want := m.Snapshot(0, 0).Asked, (Asked{LatencyMs: 30, MinAccuracy: 90, Pinned: true}); got != want {
		t.Errorf("asked %+v, want %+v", got, want)
	}
	clk.advance(8 * time.Second) // the first request has left the window
	if got, want := m.Snapshot(0, 0).Asked, (Asked{LatencyMs: 30, Pinned: true}); got != want {
		t.Errorf("after 11 s: asked %+v, want %+v", got, want)
	}
	clk.advance(10 * time.Second)
	if got := m.Snapshot(0, 0).Asked; got != (Asked{}) {
		t.Errorf("after 21 s: asked %+v, want nothing", got)
	}
}
