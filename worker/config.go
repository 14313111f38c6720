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

// DefaultThresholdsFor picks CPUThresholds on a CPU worker (each replica
// is judged on its own) and DefaultThresholds elsewhere.
func DefaultThresholdsFor(h catalog.HardwareClass) Thresholds {
	if h.Provider == "" || h.Provider == "cpu" {
		return CPUThresholds()
	}
	return DefaultThresholds()
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
	if err := c.Thresholds.Validate(); err != nil {
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
