package health

import (
	"fmt"
	"math"
	"time"

	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
)

// Health is a replica's flags with the reason for each. The dispatcher stops
// sending work to a flagged replica; the autoscalers mitigate.
type Health struct {
	Overloaded bool     `json:"overloaded"`
	Interfered bool     `json:"interfered"`
	Reasons    []string `json:"reasons,omitempty"`
}

// Healthy reports whether no flag is set.
func (h Health) Healthy() bool { return !h.Overloaded && !h.Interfered }

// Assess judges one replica from its statistics and its variant's profile.
// It is pure: the live monitor and the simulator call it alike.
//
// Interfered: the replica runs slow under real load, not over a few cold
// runs. Slow is either its observed compute p99 above t.Latency × the
// profiled p99 at the largest batch the window ran (its p99 is over
// batches of every size it ran), or its mean compute above
// t.Latency × the profiled median there — the second catches a neighbour
// that time-slices the replica's core: half the runs lose a slice, the
// throughput falls to a third, yet the p99 may stay under a noisy
// profile's. The mean is the recent window's, at its average batch, when
// that holds t.MinBatches runs (a mean over the whole window would show a
// neighbour only once most of the window ran beside it), else the
// window's. Under real load is serving more than t.QPS × what one replica
// sustains at the window's average batch (catalog.Profile.ThroughputAt,
// the autoscalers' capacity) with t.MinBatches batches in the window.
//
// Overloaded: the outstanding samples (queued + executing) exceed
// t.Outstanding × what one replica drains in t.DrainBudget at its max
// batch — INFaaS's outstanding > U·1000/inf — or admission control refused
// more than t.RefusedFraction of the requests that arrived in the window.
func Assess(s Stats, p catalog.Profile, maxBatch int, t Thresholds) Health {
	var h Health
	b := max(int(math.Round(s.AvgBatch)), 1)
	// The window's p99 is over every batch it ran, and a replica that
	// batches runs batches of many sizes: the p99 of a window of batches
	// of 1 and 2 with a few of 8 is a batch of 8's time. Against the
	// profiled p99 at the average batch it read as interference — a
	// healthy batch-8 replica at the simulated peak of the fidelity check
	// was flagged again and again (39.7 ms "3.0× the profiled 13.1 ms at
	// batch 2"; its batches of 8 took 35 ms, as profiled), so traffic
	// left it, it batched less, and stayed flagged. So the p99 is judged
	// at the largest batch the window ran. (One large batch in a window of
	// small ones makes this clause lenient; the mean clause below, judged
	// at the average batch, still sees a replica slowed throughout.)
	pb := max(b, s.MaxBatch)
	if p99, capacity := p.P99At(pb), p.ThroughputAt(b); p99 > 0 && capacity > 0 && s.Batches >= int64(t.MinBatches) && s.Batches > 0 &&
		s.InferencesPerSecond > t.QPS*capacity {
		serving := func() string { // formatted only for a flag: Assess runs every monitor tick
			return fmt.Sprintf("while serving %.0f inferences/s (%.0f%% of the %.0f one replica sustains at batch %d)",
				s.InferencesPerSecond, 100*s.InferencesPerSecond/capacity, capacity, b)
		}
		observed, mean, mb, over := ms(s.ComputeP99), ms(s.ComputeMean), b, s.Window
		if s.RecentBatches >= int64(t.MinBatches) && s.RecentBatches > 0 {
			mean, mb, over = ms(s.RecentComputeMean), max(int(math.Round(s.RecentAvgBatch)), 1), s.RecentWindow
		}
		median := p.P50At(mb)
		switch {
		case observed > t.Latency*p99:
			h.Interfered = true
			h.Reasons = append(h.Reasons, fmt.Sprintf("interfered: compute p99 %s is %.1f× the profiled %s at batch %d (the largest it ran) %s",
				fmtMs(observed), observed/p99, fmtMs(p99), pb, serving()))
		case median > 0 && mean > t.Latency*median:
			h.Interfered = true
			h.Reasons = append(h.Reasons, fmt.Sprintf("interfered: mean compute %s over the last %s is %.1f× the profiled median %s at batch %d %s",
				fmtMs(mean), over.Round(100*time.Millisecond), mean/median, fmtMs(median), mb, serving()))
		}
	}
	mb := max(maxBatch, 1)
	if profiled := p.P99At(mb); profiled > 0 {
		drain := float64(mb) * t.DrainBudget.Seconds() * 1000 / profiled
		if out := s.Outstanding(); float64(out) > t.Outstanding*drain {
			h.Overloaded = true
			h.Reasons = append(h.Reasons, fmt.Sprintf(
				"overloaded: %d samples outstanding exceed %.2f× the %.0f one replica drains in %s at batch %d (p99 %s)",
				out, t.Outstanding, drain, t.DrainBudget, mb, fmtMs(profiled)))
		}
	}
	if arrived := s.Arrivals + s.Refused; s.Refused > 0 && float64(s.Refused) > t.RefusedFraction*float64(arrived) {
		h.Overloaded = true
		h.Reasons = append(h.Reasons, fmt.Sprintf(
			"overloaded: refused %d of %d requests (%.0f%%) in the last %s",
			s.Refused, arrived, 100*float64(s.Refused)/float64(arrived), s.Window.Round(time.Millisecond)))
	}
	return h
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtMs formats v milliseconds.
func fmtMs(v float64) string { return batching.FormatMs(time.Duration(v * float64(time.Millisecond))) }
