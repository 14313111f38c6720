package health

import (
	"fmt"
	"time"
)

// Thresholds decide when a replica is flagged. They are INFaaS's monitor
// constants (qpsMonitor): a replica is interfered when its tail latency is
// Latency× its profile while it serves more than QPS× what one replica
// sustains, and overloaded when its outstanding work exceeds Outstanding×
// what one replica drains in DrainBudget.
type Thresholds struct {
	Latency     float64       // L: observed compute p99 / profiled p99 at the observed batch
	QPS         float64       // Q: observed inferences/s / one replica's capacity
	Outstanding float64       // U: outstanding samples / samples one replica drains in DrainBudget
	DrainBudget time.Duration // INFaaS: 1 s (its 1000/inf)
	// RefusedFraction flags a replica overloaded when admission refused more
	// than this fraction of the requests that arrived in the window
	// (INFaaS had no admission control; this is infaas's addition).
	RefusedFraction float64
	// MinBatches is how many batches the window must hold before latency is
	// judged at all, so a handful of slow runs flags nothing.
	MinBatches int
}

// DefaultThresholds are INFaaS's defaults: L=2.5, Q=0.5, U=0.8.
func DefaultThresholds() Thresholds {
	return Thresholds{Latency: 2.5, QPS: 0.5, Outstanding: 0.8, DrainBudget: time.Second, RefusedFraction: 0.05, MinBatches: 20}
}

// CPUThresholds are for CPU replicas: INFaaS's U=1.1 (one replica is all
// there is), but L=3 and Q=0.1. INFaaS judged average latency, queueing
// included, so it needed a replica near saturation (Q=1.0) before slowness
// meant interference rather than load; infaas judges the compute p99 of
// the ONNX Runtime runs alone, which queueing does not inflate, so a
// replica serving a tenth of its capacity with 20 batches in the window is
// enough evidence, and a neighbour that triples the tail is interference.
// (At a twentieth, on a machine whose cores the server shares, scheduling
// noise alone tripled the tail of nearly idle replicas, and flagged
// replicas are never scaled in.)
func CPUThresholds() Thresholds {
	return Thresholds{Latency: 3, QPS: 0.1, Outstanding: 1.1, DrainBudget: time.Second, RefusedFraction: 0.05, MinBatches: 20}
}

// Validate reports the first threshold out of its range.
func (t Thresholds) Validate() error {
	switch {
	case t.Latency <= 1:
		return fmt.Errorf("thresholds: latency factor %v must be above 1", t.Latency)
	case t.QPS < 0:
		return fmt.Errorf("thresholds: qps fraction %v must not be negative", t.QPS)
	case t.Outstanding <= 0:
		return fmt.Errorf("thresholds: outstanding factor %v must be positive", t.Outstanding)
	case t.DrainBudget <= 0:
		return fmt.Errorf("thresholds: drain budget %v must be positive", t.DrainBudget)
	case t.RefusedFraction < 0 || t.RefusedFraction > 1:
		return fmt.Errorf("thresholds: refused fraction %v must be within 0–1", t.RefusedFraction)
	case t.MinBatches < 0:
		return fmt.Errorf("thresholds: min batches %d must not be negative", t.MinBatches)
	}
	return nil
}
