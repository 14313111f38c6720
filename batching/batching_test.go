package batching

import (
	"errors"
	"testing"
	"time"
)

// linearCost predicts base + perSample·n.
func linearCost(base, perSample time.Duration, throughput float64) CostModel {
	return CostModel{Exec: func(n int) time.Duration { return base + time.Duration(n)*perSample }, Throughput: throughput}
}

func TestPlanBatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cost := linearCost(time.Millisecond, 100*time.Microsecond, 0) // exec(n) = 1 ms + 0.1 ms·n
	req := func(arrived time.Duration, samples int, deadline time.Duration) Queued {
		q := Queued{Arrived: at(arrived), Samples: samples}
		if deadline != 0 {
			q.Deadline = at(deadline)
		}
		return q
	}
	tests := []struct {
		name     string
		now      time.Duration
		q        []Queued
		maxBatch int
		maxDelay time.Duration
		draining bool
		want     Plan
	}{
		{name: "empty", q: nil, maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{}},
		{name: "full batch runs at once", q: []Queued{req(0, 4, 100*time.Millisecond), req(0, 4, 100*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 2, Samples: 8, Why: "batch full"}},
		{name: "next does not fit", q: []Queued{req(0, 5, 100*time.Millisecond), req(0, 4, 100*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 1, Samples: 5, Why: "next request does not fit"}},
		{name: "no deadline batches with what is there", q: []Queued{req(0, 1, 0), req(0, 2, 0)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 2, Samples: 3, Why: "no deadline"}},
		{name: "slack allows waiting up to the max delay", now: time.Millisecond, q: []Queued{req(0, 1, 100*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{Wait: 4 * time.Millisecond, Why: "waiting for more"}},
		{name: "max delay reached", now: 5 * time.Millisecond, q: []Queued{req(0, 1, 100*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 1, Samples: 1, Why: "max queue delay reached"}},
		// deadline 5 ms, exec(2) = 1.2 ms: slack 3.8 ms, half of it less the
		// timer slack waited: until 0.9 ms.
		{name: "slack shorter than the max delay", now: 500 * time.Microsecond, q: []Queued{req(0, 1, 5*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{Wait: 400 * time.Microsecond, Why: "waiting for more"}},
		{name: "slack used up", now: 900 * time.Microsecond, q: []Queued{req(0, 1, 5*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 1, Samples: 1, Why: "no slack left"}},
		{name: "slack under the timer's resolution", now: 0, q: []Queued{req(0, 1, 3*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 1, Samples: 1, Why: "no slack left"}},
		// The tightest request decides: deadlines 50 ms and 4 ms (arrived at
		// 0.1 ms), exec(3) = 1.3 ms: slack 2.6 ms, half less 1 ms waited: until 0.4 ms.
		{name: "tightest deadline decides", now: 200 * time.Microsecond,
			q:        []Queued{req(0, 1, 50*time.Millisecond), req(100*time.Microsecond, 1, 4*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{Wait: 200 * time.Microsecond, Why: "waiting for more"}},
		{name: "a request without deadline does not relax others", now: 1900 * time.Microsecond,
			q:        []Queued{req(0, 1, 0), req(0, 1, 3*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 2, Samples: 2, Why: "no slack left"}},
		{name: "draining runs at once", q: []Queued{req(0, 1, time.Second)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, draining: true, want: Plan{N: 1, Samples: 1, Why: "draining"}},
		{name: "waiting disabled", q: []Queued{req(0, 1, time.Second)},
			maxBatch: 8, maxDelay: 0, want: Plan{N: 1, Samples: 1, Why: "waiting disabled"}},
		{name: "past deadline runs at once", now: 10 * time.Millisecond, q: []Queued{req(9*time.Millisecond, 1, 5*time.Millisecond)},
			maxBatch: 8, maxDelay: 5 * time.Millisecond, want: Plan{N: 1, Samples: 1, Why: "no slack left"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanBatch(at(tc.now), tc.q, tc.maxBatch, tc.maxDelay, cost, tc.draining)
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAdmit(t *testing.T) {
	now := time.Unix(1000, 0)
	cost := linearCost(time.Millisecond, 0, 1000) // 1 ms per batch; 1000 samples/s
	tests := []struct {
		name              string
		samples           int
		deadline          time.Duration // from now; 0 = none
		queued, executing int
		bound             int
		ok                bool
	}{
		{name: "empty queue", samples: 1, bound: 8, ok: true},
		{name: "fills the bound exactly", samples: 4, queued: 4, bound: 8, ok: true},
		{name: "over the bound", samples: 5, queued: 4, bound: 8},
		{name: "bound applies without deadline", samples: 1, queued: 8, bound: 8},
		// 10 samples ahead take 10 ms, plus 1 ms for itself.
		{name: "deadline met", samples: 1, deadline: 12 * time.Millisecond, queued: 6, executing: 4, bound: 64, ok: true},
		{name: "deadline missed behind queued work", samples: 1, deadline: 10 * time.Millisecond, queued: 6, executing: 4, bound: 64},
		{name: "deadline shorter than its own run", samples: 1, deadline: 500 * time.Microsecond, bound: 64},
		{name: "deadline passed", samples: 1, deadline: -time.Millisecond, bound: 64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var dl time.Time
			if tc.deadline != 0 {
				dl = now.Add(tc.deadline)
			}
			err := Admit(now, tc.samples, dl, tc.queued, tc.executing, tc.bound, cost)
			if tc.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrOverloaded) {
				t.Errorf("got %v, want ErrOverloaded", err)
			}
		})
	}
}

func TestProfileCost(t *testing.T) {
	p99 := func(n int) float64 { return 0.5 + 0.25*float64(n) } // ms
	c := ProfileCost(p99, 0, 8)
	if got := c.Exec(2); got != time.Millisecond {
		t.Errorf("exec(2) = %v, want 1ms", got)
	}
	if want := 8 / 0.0025; c.Throughput != want { // 8 samples per 2.5 ms
		t.Errorf("derived throughput %v, want %v", c.Throughput, want)
	}
	if c := ProfileCost(p99, 1234, 8); c.Throughput != 1234 {
		t.Errorf("profiled throughput ignored: %v", c.Throughput)
	}
	if c := ProfileCost(func(int) float64 { return 0 }, 0, 8); c.Exec(4) != 0 || c.Throughput != 0 {
		t.Errorf("empty profile: exec %v, throughput %v", c.Exec(4), c.Throughput)
	}
}
