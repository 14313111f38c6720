package controller

import (
	"testing"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/selection"
)

// TestTrafficLog: per variant, the tightest target, the highest accuracy
// floor and whether any request named the variant, over one to two
// windows; unplaced loads per class, reset by each read.
func TestTrafficLog(t *testing.T) {
	h := catalog.CPUClass(1)
	v := catalog.Variant{Name: "a.v", Architecture: "a", Provider: "cpu", Hardware: h.Name, Threads: 1, MaxBatch: 1, Accuracy: 90,
		Profile: catalog.Profile{LatencyMs: map[int]catalog.Latency{1: {P50: 1, P99: 2}}, ThroughputQPS: 1000}}
	s, err := selection.NewSnapshot(selection.Catalog{Variants: []catalog.Variant{v}, Classes: []catalog.HardwareClass{h}}, selection.State{})
	if err != nil {
		t.Fatal(err)
	}
	d := selection.Decision{Variant: 0, Unplaced: -1}
	t0 := time.Unix(1_000, 0)
	l := newTrafficLog(10 * time.Second)
	l.note(t0, s, &selection.Request{LatencyMs: 50, MinAccuracy: 80}, &d)
	l.note(t0.Add(time.Second), s, &selection.Request{LatencyMs: 20}, &d)
	l.note(t0.Add(2*time.Second), s, &selection.Request{Kind: selection.KindVariant}, &selection.Decision{Variant: 0, Unplaced: 0})
	tr, un := l.snapshot(t0.Add(3 * time.Second))
	if want := (autoscale.Traffic{LatencyMs: 20, MinAccuracy: 80, Pinned: true}); tr["a.v"] != want {
		t.Fatalf("traffic %+v, want %+v", tr["a.v"], want)
	}
	if un[h.Name] != 1 {
		t.Fatalf("unplaced %v, want one on %s", un, h.Name)
	}
	if _, un = l.snapshot(t0.Add(3 * time.Second)); len(un) != 0 {
		t.Fatalf("unplaced not reset: %v", un)
	}
	// One window later the requests are still remembered; two later, not.
	if tr, _ = l.snapshot(t0.Add(12 * time.Second)); tr["a.v"].LatencyMs != 20 {
		t.Fatalf("forgot the previous window: %+v", tr)
	}
	if tr, _ = l.snapshot(t0.Add(35 * time.Second)); len(tr) != 0 {
		t.Fatalf("remembered traffic two windows old: %+v", tr)
	}
}
