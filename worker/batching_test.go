package worker

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
)

// linearCost predicts base + perSample·n.
func linearCost(base, perSample time.Duration, throughput float64) batching.CostModel {
	return batching.CostModel{Exec: func(n int) time.Duration { return base + time.Duration(n)*perSample }, Throughput: throughput}
}

// runsAlone is the batcher's plan for a lone request: an idle replica runs
// on the caller's goroutine exactly the requests the batcher would not hold
// back, so a deadline too close to wait for company skips the hand-offs.
func TestRunsAlone(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &replica{maxBatch: 8, maxDelay: 2 * time.Millisecond, cost: linearCost(60*time.Microsecond, 10*time.Microsecond, 0)}
	tests := []struct {
		name     string
		batch    int
		deadline time.Duration // from now; 0 = none
		maxDelay time.Duration
		want     bool
	}{
		{name: "no deadline", batch: 1, maxDelay: 2 * time.Millisecond, want: true},
		{name: "full batch", batch: 8, deadline: time.Second, maxDelay: 2 * time.Millisecond, want: true},
		// slack 1 ms − exec(2) = 0.92 ms: half of it is under the timer's
		// resolution, so the batcher would not wait.
		{name: "1 ms target", batch: 1, deadline: time.Millisecond, maxDelay: 2 * time.Millisecond, want: true},
		{name: "2 ms target", batch: 4, deadline: 2 * time.Millisecond, maxDelay: 2 * time.Millisecond, want: true},
		{name: "slack to wait", batch: 1, deadline: 50 * time.Millisecond, maxDelay: 2 * time.Millisecond, want: false},
		{name: "slack to wait, partial batch", batch: 7, deadline: 50 * time.Millisecond, maxDelay: 2 * time.Millisecond, want: false},
		{name: "waiting disabled", batch: 1, deadline: 50 * time.Millisecond, maxDelay: 0, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.maxDelay = tc.maxDelay
			req := Request{Batch: tc.batch}
			if tc.deadline != 0 {
				req.Deadline = now.Add(tc.deadline)
			}
			if got := r.runsAlone(now, req); got != tc.want {
				t.Errorf("runsAlone = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCopyInputScales(t *testing.T) {
	src := make([]byte, 8)
	binary.LittleEndian.PutUint32(src[0:], math.Float32bits(255))
	binary.LittleEndian.PutUint32(src[4:], math.Float32bits(51))
	dst := make([]byte, 8)
	if n := copyInput(dst, src, 1.0/255); n != 8 {
		t.Fatalf("copied %d bytes", n)
	}
	got := floats(dst)
	if got[0] != 1 || got[1] != float32(float64(51)/255) {
		t.Errorf("scaled %v", got)
	}
	copyInput(dst, src, 1)
	if got := floats(dst); got[0] != 255 || got[1] != 51 {
		t.Errorf("unscaled %v", got)
	}
}

// TestSlownessScalesAdmission: a replica that runs three times slower than
// its profile refuses a deadline the profile alone would admit, and one
// that runs faster is never judged faster than its profile.
func TestSlownessScalesAdmission(t *testing.T) {
	r := &replica{maxBatch: 1}
	r.setCost(catalog.Profile{LatencyMs: map[int]catalog.Latency{1: {P50: 1, P99: 1}}, ThroughputQPS: 1000})
	now := time.Unix(1000, 0)
	deadline := now.Add(8 * time.Millisecond) // 5 queued (5 ms) + 1 ms own: fits the profile
	if err := batching.Admit(now, 1, deadline, 5, 0, 64, r.costNow()); err != nil {
		t.Fatalf("the profile alone admits: %v", err)
	}
	for range 30 {
		r.observe(1, 3*time.Millisecond)
	}
	if f := r.slowFactor(); f < 2.9 || f > 3.01 {
		t.Fatalf("slowness %v after runs at 3× the median, want about 3", f)
	}
	if err := batching.Admit(now, 1, deadline, 5, 0, 64, r.costNow()); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("3× slower: 15 ms of queue + 3 ms cannot meet 8 ms, got %v", err)
	}
	for range 60 {
		r.observe(1, 100*time.Microsecond)
	}
	if f := r.slowFactor(); f != 1 {
		t.Fatalf("faster than the profile must not scale below it: %v", f)
	}
}
