package worker

import (
	"time"

	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
)

// The replica monitor and its flag rules live in the cgo-free package
// health, which the simulator shares; these names keep the worker's API.

// Stats is one replica's recent behaviour: health.Stats.
type Stats = health.Stats

// Health is a replica's flags with the reason for each: health.Health.
type Health = health.Health

// Thresholds decide when a replica is flagged: health.Thresholds.
type Thresholds = health.Thresholds

// DefaultThresholds are INFaaS's defaults: health.DefaultThresholds.
func DefaultThresholds() Thresholds { return health.DefaultThresholds() }

// CPUThresholds are for CPU replicas: health.CPUThresholds.
func CPUThresholds() Thresholds { return health.CPUThresholds() }

// Assess judges one replica from its statistics and its variant's profile:
// health.Assess.
func Assess(s Stats, p catalog.Profile, maxBatch int, t Thresholds) Health {
	return health.Assess(s, p, maxBatch, t)
}

func ms(d time.Duration) string { return batching.FormatMs(d) }
