package autoscale

import (
	"testing"
	"time"
)

// TestTrafficLog: per variant, the tightest target, the highest accuracy
// floor and whether any request named the variant, over one to two
// windows; unplaced loads per class, reset by each read.
func TestTrafficLog(t *testing.T) {
	const class = "cpu-1"
	t0 := time.Unix(1_000, 0)
	l := NewTrafficLog(10 * time.Second)
	l.Note(t0, "a.v", Traffic{LatencyMs: 50, MinAccuracy: 80}, "")
	l.Note(t0.Add(time.Second), "a.v", Traffic{LatencyMs: 20}, "")
	l.Note(t0.Add(2*time.Second), "a.v", Traffic{Pinned: true}, class)
	tr, un := l.Snapshot(t0.Add(3 * time.Second))
	if want := (Traffic{LatencyMs: 20, MinAccuracy: 80, Pinned: true}); tr["a.v"] != want {
		t.Fatalf("traffic %+v, want %+v", tr["a.v"], want)
	}
	if un[class] != 1 {
		t.Fatalf("unplaced %v, want one on %s", un, class)
	}
	if _, un = l.Snapshot(t0.Add(3 * time.Second)); len(un) != 0 {
		t.Fatalf("unplaced not reset: %v", un)
	}
	// One window later the requests are still remembered; two later, not.
	if tr, _ = l.Snapshot(t0.Add(12 * time.Second)); tr["a.v"].LatencyMs != 20 {
		t.Fatalf("forgot the previous window: %+v", tr)
	}
	if tr, _ = l.Snapshot(t0.Add(35 * time.Second)); len(tr) != 0 {
		t.Fatalf("remembered traffic two windows old: %+v", tr)
	}
}

// A request that asks what the previous one asked is noted again once a
// window has turned (the log skips only repeats within a window).
func TestTrafficLogRepeatAcrossWindows(t *testing.T) {
	t0 := time.Unix(1_000, 0)
	l := NewTrafficLog(10 * time.Second)
	want := Traffic{LatencyMs: 50}
	l.Note(t0, "a.v", want, "")
	l.Note(t0.Add(time.Second), "a.v", want, "")
	l.Snapshot(t0.Add(10 * time.Second)) // turns the window
	l.Note(t0.Add(11*time.Second), "a.v", want, "")
	if tr, _ := l.Snapshot(t0.Add(20 * time.Second)); tr["a.v"] != want {
		t.Fatalf("traffic noted after the window turned: %+v, want %+v", tr["a.v"], want)
	}
	if tr, _ := l.Snapshot(t0.Add(30 * time.Second)); len(tr) != 0 {
		t.Fatalf("remembered traffic two windows old: %+v", tr)
	}
}
