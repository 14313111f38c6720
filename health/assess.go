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
// Interfered: the observed compute p99 exceeds t.Latency × the profiled p99
// at the observed average batch while the replica serves more than t.QPS ×
// the inferences per second one replica sustains at that batch — slow
// under real load, not a few cold runs (and only once the window holds
// t.MinBatches batches).
//
// Overloaded: the outstanding samples (queued + executing) exceed
// t.Outstanding × what one replica drains in t.DrainBudget at its max
// batch — INFaaS's outstanding > U·1000/inf — or admission control refused
// more than t.RefusedFraction of the requests that arrived in the window.
func Assess(s Stats, p catalog.Profile, maxBatch int, t Thresholds) Health {
	var h Health
	b := max(int(math.Round(s.AvgBatch)), 1)
	if profiled := p.P99At(b); profiled > 0 && s.Batches >= int64(t.MinBatches) && s.Batches > 0 {
		observed := float64(s.ComputeP99) / float64(time.Millisecond)
		capacity := float64(b) * 1000 / profiled
		if observed > t.Latency*profiled && s.InferencesPerSecond > t.QPS*capacity {
			h.Interfered = true
			h.Reasons = append(h.Reasons, fmt.Sprintf(
				"interfered: compute p99 %s is %.1f× the profiled %s at batch %d while serving %.0f inferences/s (%.0f%% of the %.0f one replica sustains)",
				fmtMs(observed), observed/profiled, fmtMs(profiled), b, s.InferencesPerSecond, 100*s.InferencesPerSecond/capacity, capacity))
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

// fmtMs formats v milliseconds.
func fmtMs(v float64) string { return batching.FormatMs(time.Duration(v * float64(time.Millisecond))) }
