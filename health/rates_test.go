package health

import (
	"math"
	"testing"
	"time"
)

func TestSlowness(t *testing.T) {
	s := 1.0
	for range 30 {
		s = Slowness(s, 8*time.Millisecond, 2) // four times the median
	}
	if math.Abs(s-4) > 0.01 {
		t.Errorf("slowness after 30 batches at 4× the median: %v, want about 4", s)
	}
	if got := Slowness(1.5, time.Second, 0); got != 1.5 {
		t.Errorf("unknown median: %v, want the old value", got)
	}
	// One spike of 50× among runs at the median moves it by a fifth of
	// the spike, and it decays back.
	s = Slowness(1, 100*time.Millisecond, 2)
	if math.Abs(s-10.8) > 1e-9 {
		t.Errorf("after one 50× spike: %v, want 0.8 + 0.2 × 50 = 10.8", s)
	}
	for range 30 {
		s = Slowness(s, 2*time.Millisecond, 2)
	}
	if s > 1.02 {
		t.Errorf("30 runs at the median after a spike: %v, want about 1", s)
	}
	// A 30 µs model: its medians count as SlownessFloor. A cold 3 ms run
	// moves it as a 3× spike would, not a 100× one, and runs of 90 µs
	// (three times the median, 60 µs more) do not make it slow.
	if s = Slowness(1, 3*time.Millisecond, 0.03); math.Abs(s-1.4) > 1e-9 {
		t.Errorf("a 3 ms cold run of a 30 µs model: %v, want 0.8 + 0.2 × 3 = 1.4", s)
	}
	s = 1
	for range 30 {
		s = Slowness(s, 90*time.Microsecond, 0.03)
	}
	if DecayedSlowness(s, 0) != 1 {
		t.Errorf("30 runs of 90 µs of a 30 µs model: slowness %v, want 1", DecayedSlowness(s, 0))
	}
}

func TestDemand(t *testing.T) {
	// 100 requests in 10 s (10/s), two samples each, but 30 in the last
	// two seconds: the recent rate wins.
	s := Stats{Window: 10 * time.Second, Arrivals: 90, Refused: 10, QPS: 9, InferencesPerSecond: 18,
		RecentArrivals: 30, RecentWindow: 2 * time.Second}
	if got := Demand(s); math.Abs(got-30) > 1e-9 {
		t.Errorf("Demand = %v, want 15/s × 2 samples = 30", got)
	}
	s.RecentArrivals = 2
	if got := Demand(s); math.Abs(got-20) > 1e-9 {
		t.Errorf("Demand = %v, want the window's 10/s × 2 = 20", got)
	}
	if got := Demand(Stats{}); got != 0 {
		t.Errorf("empty window: %v", got)
	}
}

func TestBusy(t *testing.T) {
	s := Stats{InferencesPerSecond: 50}
	if got := Busy(s, 100, 2, 8); math.Abs(got-0.125) > 1e-9 {
		t.Errorf("Busy = %v, want half of 2 of 8 cores = 0.125", got)
	}
	if got := Busy(s, 0, 1, 1); got != 0 {
		t.Errorf("unprofiled: %v", got)
	}
}

func TestDecayedSlowness(t *testing.T) {
	if got := DecayedSlowness(5, 0); got != 5 {
		t.Errorf("no idle time: %v", got)
	}
	if got := DecayedSlowness(5, SlownessHalfLife); math.Abs(got-3) > 1e-9 {
		t.Errorf("one half-life: %v, want 1 + 4/2 = 3", got)
	}
	if got := DecayedSlowness(5, 20*SlownessHalfLife); got > 1.001 {
		t.Errorf("long idle: %v, want about 1", got)
	}
	if got := DecayedSlowness(0.5, time.Second); got != 1 {
		t.Errorf("faster than the profile counts as 1: %v", got)
	}
}
