package autoscale

import (
	"fmt"
	"time"
)

// Config configures the model autoscaler. The zero value of a field means
// its default (DefaultConfig); Horizontal and Vertical are switched off
// through Static and NoVertical so that the zero Config scales fully.
type Config struct {
	// ScaleUpAt: scale up when demand exceeds this fraction of capacity.
	// INFaaS used 1.0 on GPUs and 0.95 on CPUs; infaas keeps headroom
	// for the queueing a latency target must absorb.
	ScaleUpAt float64
	// ScaleDownAt: remove a replica (or downgrade) when demand stays below
	// this fraction of the capacity that would remain. Must be below
	// ScaleUpAt, so that a step down never triggers a step up.
	ScaleDownAt float64
	// Target is the utilisation a scale-up aims at (between the two).
	Target float64
	// UpWindow and DownWindow are how long a condition must hold before
	// it acts (stabilisation); Cooldown is the least time between two
	// actions on one architecture.
	UpWindow   time.Duration
	DownWindow time.Duration
	Cooldown   time.Duration
	// IdleUnload unloads an architecture's last replicas after it has had
	// no traffic for this long; negative keeps them forever.
	IdleUnload time.Duration
	// LatencyShare is the share of a latency target the batch's p99 may
	// take; the rest is for queueing and the way back.
	LatencyShare float64
	// MaxReplicas bounds the replicas of one variant instance (variant on
	// a class).
	MaxReplicas int
	// NoVertical: never switch variants (SM+, and infaas with vertical
	// scaling off). Static: never add or remove replicas or variants at
	// all (Clipper+'s static provisioning).
	NoVertical bool
	Static     bool
}

// DefaultConfig is the model autoscaler's defaults.
func DefaultConfig() Config {
	return Config{
		ScaleUpAt: 0.8, ScaleDownAt: 0.4, Target: 0.6,
		UpWindow: 3 * time.Second, DownWindow: 30 * time.Second, Cooldown: 10 * time.Second,
		IdleUnload: 10 * time.Minute, LatencyShare: 0.5, MaxReplicas: 8,
	}
}

// WithDefaults fills zero fields from DefaultConfig and validates.
func (c Config) WithDefaults() (Config, error) {
	d := DefaultConfig()
	f := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	f(&c.ScaleUpAt, d.ScaleUpAt)
	f(&c.ScaleDownAt, d.ScaleDownAt)
	f(&c.Target, d.Target)
	f(&c.LatencyShare, d.LatencyShare)
	t := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	t(&c.UpWindow, d.UpWindow)
	t(&c.DownWindow, d.DownWindow)
	t(&c.Cooldown, d.Cooldown)
	t(&c.IdleUnload, d.IdleUnload)
	if c.MaxReplicas == 0 {
		c.MaxReplicas = d.MaxReplicas
	}
	switch {
	case c.ScaleDownAt <= 0 || c.ScaleDownAt >= c.ScaleUpAt:
		return c, fmt.Errorf("autoscale: scale-down fraction %v must be positive and below the scale-up fraction %v", c.ScaleDownAt, c.ScaleUpAt)
	case c.Target <= c.ScaleDownAt || c.Target > c.ScaleUpAt:
		return c, fmt.Errorf("autoscale: target utilisation %v must lie above the scale-down fraction %v and at most the scale-up fraction %v", c.Target, c.ScaleDownAt, c.ScaleUpAt)
	case c.LatencyShare <= 0 || c.LatencyShare > 1:
		return c, fmt.Errorf("autoscale: latency share %v must be within (0, 1]", c.LatencyShare)
	case c.UpWindow < 0 || c.DownWindow < 0 || c.Cooldown < 0:
		return c, fmt.Errorf("autoscale: windows and cool-down must not be negative")
	case c.MaxReplicas < 1:
		return c, fmt.Errorf("autoscale: max replicas %d must be at least 1", c.MaxReplicas)
	}
	return c, nil
}

// ClusterConfig configures the cluster autoscaler.
type ClusterConfig struct {
	// MinWorkers and MaxWorkers bound the workers of all classes; the
	// autoscaler never removes below the floor nor adds above the ceiling.
	// MaxWorkers 0 disables adding.
	MinWorkers int
	MaxWorkers int
	// UtilThreshold: a class whose every worker is busier than this is
	// short (INFaaS: 0.8 on CPUs and GPUs).
	UtilThreshold float64
	// OutWindow is how long a shortage must last before a worker is added;
	// IdleCooldown how long a removable worker must serve nothing before it
	// is drained and removed; Interval the least time between two actions.
	OutWindow    time.Duration
	IdleCooldown time.Duration
	Interval     time.Duration
}

// DefaultClusterConfig is the cluster autoscaler's defaults: INFaaS's
// 80 % utilisation, a 2 s shortage window (its loop), 30 s idle before
// scale-in (its 15 loops), 10 s between actions.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{UtilThreshold: 0.8, OutWindow: 2 * time.Second, IdleCooldown: 30 * time.Second, Interval: 10 * time.Second}
}

// WithDefaults fills zero fields and validates.
func (c ClusterConfig) WithDefaults() (ClusterConfig, error) {
	d := DefaultClusterConfig()
	if c.UtilThreshold == 0 {
		c.UtilThreshold = d.UtilThreshold
	}
	if c.OutWindow == 0 {
		c.OutWindow = d.OutWindow
	}
	if c.IdleCooldown == 0 {
		c.IdleCooldown = d.IdleCooldown
	}
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	switch {
	case c.MinWorkers < 0 || c.MaxWorkers < 0:
		return c, fmt.Errorf("autoscale: worker bounds must not be negative (min %d, max %d)", c.MinWorkers, c.MaxWorkers)
	case c.MaxWorkers > 0 && c.MaxWorkers < c.MinWorkers:
		return c, fmt.Errorf("autoscale: max workers %d is below min workers %d", c.MaxWorkers, c.MinWorkers)
	case c.UtilThreshold <= 0 || c.UtilThreshold > 1:
		return c, fmt.Errorf("autoscale: utilisation threshold %v must be within (0, 1]", c.UtilThreshold)
	case c.OutWindow < 0 || c.IdleCooldown < 0 || c.Interval < 0:
		return c, fmt.Errorf("autoscale: windows must not be negative")
	}
	return c, nil
}
