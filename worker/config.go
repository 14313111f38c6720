package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/infaas/infaas/catalog"
)

// Config configures a Worker. Zero fields take the defaults noted.
type Config struct {
	ID       string                // required
	Hardware catalog.HardwareClass // what the worker runs on
	// MemoryBytes is the memory the ledger may hand out to replicas;
	// 0 means Hardware.MemoryBytes. One of the two must be set.
	MemoryBytes int64
	// QueueBound is the most samples a replica's queue holds (queued, not
	// yet executing); 0 means DefaultQueueBound. A replica's bound is never
	// below its max batch, so a full-size request always fits an empty queue.
	QueueBound int
	// MaxQueueDelay caps how long the batcher holds a request back waiting
	// for others to batch with; 0 means DefaultMaxQueueDelay, negative
	// disables waiting (batches form only from what is already queued).
	MaxQueueDelay time.Duration
	// Thresholds for the health flags; the zero value means
	// DefaultThresholdsFor(Hardware).
	Thresholds Thresholds
	// MonitorWindow and MonitorBucket shape the sliding window of the
	// per-replica statistics; 0 means 10 s and 1 s.
	MonitorWindow time.Duration
	MonitorBucket time.Duration
	// Now is the clock for timestamps, statistics and batching decisions;
	// nil means time.Now. Batching waits use real timers, so a replacement
	// must advance with real time.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultQueueBound    = 256
	DefaultMaxQueueDelay = 2 * time.Millisecond
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
// there is), but L=3 and Q=0.05. INFaaS judged average latency, queueing
// included, so it needed a replica near saturation (Q=1.0) before slowness
// meant interference rather than load; infaas judges the compute p99 of
// the ONNX Runtime runs alone, which queueing does not inflate, so a
// replica serving a twentieth of its capacity with 20 batches in the
// window is enough evidence, and a neighbour that triples the tail is
// interference.
func CPUThresholds() Thresholds {
	return Thresholds{Latency: 3, QPS: 0.05, Outstanding: 1.1, DrainBudget: time.Second, RefusedFraction: 0.05, MinBatches: 20}
}

// DefaultThresholdsFor picks CPUThresholds on a CPU worker (each replica
// is judged on its own) and DefaultThresholds elsewhere.
func DefaultThresholdsFor(h catalog.HardwareClass) Thresholds {
	if h.Provider == "" || h.Provider == "cpu" {
		return CPUThresholds()
	}
	return DefaultThresholds()
}

func (t Thresholds) validate() error {
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

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	if c.ID == "" {
		return c, errors.New("worker config: an ID is required")
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = c.Hardware.MemoryBytes
	}
	if c.MemoryBytes <= 0 {
		return c, fmt.Errorf("worker config: memory capacity must be positive (set MemoryBytes or Hardware.MemoryBytes), got %d", c.MemoryBytes)
	}
	if c.QueueBound == 0 {
		c.QueueBound = DefaultQueueBound
	}
	if c.QueueBound < 0 {
		return c, fmt.Errorf("worker config: queue bound %d must be positive", c.QueueBound)
	}
	if c.MaxQueueDelay == 0 {
		c.MaxQueueDelay = DefaultMaxQueueDelay
	}
	if c.MaxQueueDelay < 0 {
		c.MaxQueueDelay = 0
	}
	if c.Thresholds == (Thresholds{}) {
		c.Thresholds = DefaultThresholdsFor(c.Hardware)
	}
	if err := c.Thresholds.validate(); err != nil {
		return c, fmt.Errorf("worker config: %w", err)
	}
	if c.MonitorWindow == 0 {
		c.MonitorWindow = 10 * time.Second
	}
	if c.MonitorBucket == 0 {
		c.MonitorBucket = time.Second
	}
	if c.MonitorBucket <= 0 || c.MonitorWindow < c.MonitorBucket {
		return c, fmt.Errorf("worker config: monitor window %v must hold at least one bucket of %v", c.MonitorWindow, c.MonitorBucket)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
