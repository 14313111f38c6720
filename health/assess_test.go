package health

import (
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
)

func TestAssess(t *testing.T) {
	// p50 0.8 ms at batch 1, 1 ms at batch 4, 1.5 ms at batch 8: one
	// replica sustains 1250 inf/s at batch 1, 4000 at batch 4, ~5333 at
	// batch 8 (ThroughputAt); the p99 is 1, 1.3 and 2 ms.
	profile := catalog.Profile{LatencyMs: map[int]catalog.Latency{
		1: {P50: 0.8, P99: 1}, 4: {P50: 1, P99: 1.3}, 8: {P50: 1.5, P99: 2},
	}}
	th := DefaultThresholds() // L 2.5, Q 0.5, U 0.8, 1 s
	busy := Stats{Window: 10 * time.Second, Batches: 1000, AvgBatch: 4, InferencesPerSecond: 2500, Arrivals: 5000, ComputeMean: 1100 * time.Microsecond}
	with := func(s Stats, f func(*Stats)) Stats { f(&s); return s }
	tests := []struct {
		name       string
		stats      Stats
		th         Thresholds
		overloaded bool
		interfered bool
		reason     string
	}{
		{name: "healthy", stats: with(busy, func(s *Stats) { s.ComputeP99 = 2 * time.Millisecond }), th: th},
		{name: "slow under load is interfered",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 4100 * time.Microsecond }), th: th, interfered: true,
			reason: "compute p99 4.10 ms is 3.2× the profiled 1.30 ms at batch 4 (the largest it ran) while serving 2500 inferences/s (62% of the 4000 one replica sustains at batch 4)"},
		// A replica that batches runs many sizes: the window's p99 is its
		// batches of 8, judged against batch 8's p99 of 2 ms, not the
		// ~1.1 ms of its average batch of 2.
		{name: "a mix of batch sizes is judged at the largest",
			stats: with(busy, func(s *Stats) { s.AvgBatch, s.MaxBatch, s.ComputeP99 = 2, 8, 3900*time.Microsecond }), th: CPUThresholds()},
		{name: "slow at the largest batch is interfered",
			stats: with(busy, func(s *Stats) { s.AvgBatch, s.MaxBatch, s.ComputeP99 = 2, 8, 6500*time.Microsecond }), th: CPUThresholds(),
			interfered: true, reason: "compute p99 6.50 ms is 3.2× the profiled 2.00 ms at batch 8 (the largest it ran)"},
		{name: "slow but idle is not interfered",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 5 * time.Millisecond; s.InferencesPerSecond = 100 }), th: th},
		{name: "too few batches to judge",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 5 * time.Millisecond; s.Batches = 5 }), th: th},
		{name: "cpu thresholds tolerate 2.8×",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 3640 * time.Microsecond; s.InferencesPerSecond = 3500 }), th: CPUThresholds()},
		{name: "cpu thresholds flag 4.5× at full load",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 5850 * time.Microsecond; s.InferencesPerSecond = 3500 }), th: CPUThresholds(),
			interfered: true, reason: "4.5× the profiled 1.30 ms"},
		{name: "cpu thresholds flag 3.2× at light load",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 4160 * time.Microsecond; s.InferencesPerSecond = 450 }), th: CPUThresholds(),
			interfered: true, reason: "3.2× the profiled 1.30 ms"},
		// A neighbour that preempts every other run by a time slice: the
		// tail stays under 3× a noisy profile's, the mean triples.
		{name: "a tripled mean is interfered though the tail is not",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 3640 * time.Microsecond; s.ComputeMean = 3200 * time.Microsecond }), th: CPUThresholds(),
			interfered: true, reason: "mean compute 3.20 ms over the last 10s is 3.2× the profiled median 1.00 ms at batch 4"},
		// The neighbour arrived two seconds ago: the window's mean has not
		// caught up, the recent one has.
		{name: "a tripled recent mean is interfered",
			stats: with(busy, func(s *Stats) {
				s.ComputeMean, s.RecentComputeMean, s.RecentBatches, s.RecentWindow, s.RecentAvgBatch = 1500*time.Microsecond, 3200*time.Microsecond, 150, 2*time.Second, 4
			}), th: CPUThresholds(),
			interfered: true, reason: "mean compute 3.20 ms over the last 2s is 3.2× the profiled median 1.00 ms at batch 4"},
		// The load rose: the last two seconds ran batches of 8, judged
		// against batch 8's median of 1.5 ms, not batch 4's 1 ms.
		{name: "a recent mean is judged at the recent batch",
			stats: with(busy, func(s *Stats) {
				s.RecentComputeMean, s.RecentBatches, s.RecentWindow, s.RecentAvgBatch = 4*time.Millisecond, 150, 2*time.Second, 8
			}), th: CPUThresholds()},
		{name: "a recent mean over too few runs is not read",
			stats: with(busy, func(s *Stats) {
				s.ComputeMean, s.RecentComputeMean, s.RecentBatches, s.RecentWindow, s.RecentAvgBatch = 1500*time.Microsecond, 9*time.Millisecond, 5, 2*time.Second, 4
			}), th: CPUThresholds()},
		{name: "a recent mean back to normal clears the window's",
			stats: with(busy, func(s *Stats) {
				s.ComputeMean, s.RecentComputeMean, s.RecentBatches, s.RecentWindow, s.RecentAvgBatch = 3200*time.Microsecond, 1100*time.Microsecond, 150, 2*time.Second, 4
			}), th: CPUThresholds()},
		{name: "a mean within 3× the median is not",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 3640 * time.Microsecond; s.ComputeMean = 2800 * time.Microsecond }), th: CPUThresholds()},
		{name: "a tripled mean while almost idle is not",
			stats: with(busy, func(s *Stats) { s.ComputeMean = 5 * time.Millisecond; s.InferencesPerSecond = 100 }), th: CPUThresholds()},
		{name: "cpu thresholds ignore an almost idle replica",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 5850 * time.Microsecond; s.InferencesPerSecond = 100 }), th: CPUThresholds()},
		// At max batch 8 one replica drains 4000 samples a second; U 0.8 → 3200.
		{name: "deep queue is overloaded",
			stats: with(busy, func(s *Stats) { s.Queued = 3300; s.Executing = 8 }), th: th, overloaded: true,
			reason: "3308 samples outstanding exceed 0.80× the 4000 one replica drains in 1s at batch 8"},
		{name: "queue within budget", stats: with(busy, func(s *Stats) { s.Queued = 3000 }), th: th},
		{name: "refusing requests is overloaded",
			stats: with(busy, func(s *Stats) { s.Refused = 500; s.Arrivals = 4500 }), th: th, overloaded: true,
			reason: "refused 500 of 5000 requests (10%) in the last 10s"},
		{name: "a few refusals are tolerated", stats: with(busy, func(s *Stats) { s.Refused = 10 }), th: th},
		{name: "both flags",
			stats: with(busy, func(s *Stats) { s.ComputeP99 = 10 * time.Millisecond; s.Queued = 5000 }), th: th,
			overloaded: true, interfered: true},
		{name: "nothing served yet", stats: Stats{}, th: th},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := Assess(tc.stats, profile, 8, tc.th)
			if h.Overloaded != tc.overloaded || h.Interfered != tc.interfered {
				t.Fatalf("got overloaded %v interfered %v (%v), want %v %v", h.Overloaded, h.Interfered, h.Reasons, tc.overloaded, tc.interfered)
			}
			if h.Healthy() != (len(h.Reasons) == 0) {
				t.Errorf("flags and reasons disagree: %+v", h)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(h.Reasons, "; "), tc.reason) {
				t.Errorf("reasons %q lack %q", h.Reasons, tc.reason)
			}
			for _, r := range h.Reasons {
				t.Log(r)
			}
		})
	}
	if h := Assess(Stats{Queued: 1e6, Batches: 1e6, ComputeP99: time.Hour, InferencesPerSecond: 1e9}, catalog.Profile{}, 8, th); !h.Healthy() {
		t.Errorf("an unprofiled variant cannot be judged on latency or drain rate: %v", h.Reasons)
	}
}
