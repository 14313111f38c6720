package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/policies"
	"github.com/infaas/infaas/workload"
)

// Config is one simulated run: what is registered, the cluster it starts
// with, the policy, the load, and how the simulated hardware behaves.
type Config struct {
	// Architectures and Variants are what is registered (ready variants
	// with profiles); Classes the hardware classes with their prices.
	Architectures []catalog.Architecture
	Variants      []catalog.Variant
	Classes       []catalog.HardwareClass
	// Workers are the classes of the workers running at the start; they
	// are never removed (the cluster autoscaler removes only the workers
	// it added, like the live provider's).
	Workers []string

	// Policy is the serving policy (selection and autoscaling
	// configuration); Fixed its --fixed pairs for the fixed policies.
	Policy policies.Policy
	Fixed  string
	// Models configures the model autoscaler (before Policy adjusts it);
	// Autoscale false runs without it, as `infaas serve --autoscale=false`.
	Models    autoscale.Config
	Autoscale bool
	// Cluster, when set, runs the cluster autoscaler; WorkerStart is how
	// long a worker it adds takes to join.
	Cluster     *autoscale.ClusterConfig
	WorkerStart time.Duration
	// Provision loads replicas before the first query: variant name →
	// count, placed like selection places loads. Clipper+ is provisioned
	// this way (statically, for the load it will see).
	Provision map[string]int
	// GrowToProvision adds workers of the first worker's class until the
	// provisioned replicas fit (a static deployment sized for its load).
	GrowToProvision bool
	// Assumptions are reported with the result (see Derive).
	Assumptions []string

	// Schedule and Arrivals place the queries in time (loadgen's, so a
	// live run and a simulated one see the same load); Trace, when set,
	// replays exact arrival times instead. Mix gives each query its
	// requirements.
	Schedule workload.Schedule
	Arrivals workload.ArrivalKind
	Trace    *workload.Trace
	Mix      workload.Mix
	Seed     uint64

	// Noise scales the spread of service times (see serviceTime): 1
	// reproduces the profile's p50 and p99 (or ServiceShape's spread), 0
	// makes every batch take exactly its p50.
	Noise float64
	// ServiceShape, when set, replaces the profiles' spread with a
	// measured one: each batch's time over its profile's p50, as a live
	// host's workers ran them (the tail a shared machine adds: a worker
	// descheduled mid-batch, a cache cold after a neighbour ran). Each
	// batch draws one uniformly, divided by their mean — the shape, not
	// the level, which stays the profile's p50 times ComputeScale.
	ServiceShape []float64
	// ServiceShapeBlock is the mean number of consecutive batches a
	// replica takes from ServiceShape in its measured order before it
	// jumps to a random entry (a stationary block bootstrap): a shared
	// host's slow stretches last several batches, and a run of slow
	// batches queues up — and makes the replicas' slowness, and so the
	// admission control, react — as independent ones do not. 0 or 1:
	// every batch draws independently.
	ServiceShapeBlock float64
	// Interference slows the replicas of some workers for a while.
	Interference []Interference
	// Overhead is the median time a query spends outside the worker
	// (client to controller to worker and back), split evenly before and
	// after; OverheadP99, when above it, its 99th percentile, drawn with
	// the service times' body-and-tail model (a Go GC pause, a scheduling
	// delay). 0: always Overhead.
	Overhead    time.Duration
	OverheadP99 time.Duration
	// OverheadSample, when set, replaces both: each query's time outside
	// the worker is drawn uniformly from these measured ones (the whole
	// shape of a host's tail: GC pauses, scheduling delays, a noisy
	// neighbour), each split evenly before and after the worker.
	OverheadSample []time.Duration
	// HostCPUPerQuery is the CPU time the processes beside the workers —
	// the client, the controller — spend per query on the workers' own
	// cores, as when `infaas serve` and its load share one machine. The
	// kernel shares the host's HostCores fairly: with u = rate over the
	// last second × HostCPUPerQuery (+ HostCPUBase) the cores those
	// processes want, and k the cores the workers' batches hold when a
	// batch starts (its own included), the batch takes × max(1,
	// (k + u) ÷ HostCores) — nothing while a core is idle for them, the
	// fair share once the host is oversubscribed. (The first model,
	// × (1 + u ÷ HostCores) whatever the workers did, charged a lone
	// busy worker for CPU the idle core absorbed and undercharged two
	// busy ones: the simulated batches at the fidelity check's peak took
	// 1.37× their p50s where the live ones took 1.53×.) 0 (the default)
	// means the workers have their machines to themselves. HostCores 0
	// means the initial workers' cores.
	HostCPUPerQuery time.Duration
	// HostCPUBase is the part of those processes' CPU that does not grow
	// with the rate: CPU time per second while any query arrived in the
	// last second, added to HostCPUPerQuery × rate before the division
	// by HostCores. Measured at two rates, the host's CPU per query was
	// 1.7 ms at 33 q/s and 1.1 ms at 126 q/s on this 2-core VM: one
	// figure from a light load overstates the slow-down near capacity,
	// and made the simulator refuse 140 queries where the live server
	// refused 9.
	HostCPUBase time.Duration
	HostCores   int
	// ComputeScale is how much longer a batch takes in a serving worker
	// than its profile's p50 says, beyond the host's CPU and interference:
	// a worker runs ONNX Runtime on a core it shares with its own RPC
	// server, batcher and Go runtime, which the profiler's child, timing
	// back-to-back runs alone, did not. Every service time is multiplied
	// by it; 0 means 1. The live fidelity check measures it from the
	// workers' compute statistics on its calibration loads (1.07–1.16 on
	// the 2-core VM) — without it the simulated peak was 20–30 % faster
	// than the live one.
	ComputeScale float64

	// Worker behaviour, as the live worker's defaults.
	QueueBound    int
	MaxQueueDelay time.Duration
	Thresholds    health.Thresholds
	MonitorWindow time.Duration
	MonitorBucket time.Duration
	// Refresh is how often workers report (the selection snapshot's state
	// is rebuilt); Every how often the autoscalers step; Sample the
	// length of one row of the time series.
	Refresh time.Duration
	Every   time.Duration
	Sample  time.Duration
}

// Interference makes the replicas on Worker (an index into the workers in
// the order they joined) run Factor times slower from At for For.
type Interference struct {
	Worker int
	At     time.Duration
	For    time.Duration
	Factor float64
}

// DefaultConfig is a run's defaults: infaas's policy with its autoscaler
// defaults, the live worker's queue and monitor settings, reports every
// 250 ms, an autoscaler step a second, 1 ms outside the worker, workers
// that take 5 s to join, and the profiles' own spread.
func DefaultConfig() Config {
	p, _ := policies.Lookup("infaas")
	return Config{
		Policy:        p,
		Models:        autoscale.DefaultConfig(),
		Autoscale:     true,
		WorkerStart:   5 * time.Second,
		Arrivals:      workload.Poisson,
		Seed:          1,
		Noise:         1,
		Overhead:      time.Millisecond,
		QueueBound:    256,
		MaxQueueDelay: 2 * time.Millisecond,
		Thresholds:    health.CPUThresholds(),
		MonitorWindow: 10 * time.Second,
		MonitorBucket: time.Second,
		Refresh:       250 * time.Millisecond,
		Every:         time.Second,
		Sample:        time.Second,
	}
}

func (c *Config) validate() error {
	switch {
	case len(c.Variants) == 0:
		return errors.New("sim: no variants registered")
	case len(c.Workers) == 0:
		return errors.New("sim: no workers; give at least one worker class")
	case c.Schedule == nil && c.Trace == nil:
		return errors.New("sim: no load; give a schedule or a trace")
	case c.Refresh <= 0 || c.Every <= 0 || c.Sample <= 0:
		return errors.New("sim: refresh, step and sample intervals must be positive")
	case c.MonitorBucket <= 0 || c.MonitorWindow < c.MonitorBucket:
		return fmt.Errorf("sim: monitor window %v must hold at least one bucket of %v", c.MonitorWindow, c.MonitorBucket)
	case c.QueueBound <= 0:
		return errors.New("sim: the queue bound must be positive")
	case c.Noise < 0:
		return errors.New("sim: noise must not be negative")
	case c.ServiceShapeBlock < 0 || math.IsNaN(c.ServiceShapeBlock) || math.IsInf(c.ServiceShapeBlock, 0):
		return errors.New("sim: a service shape's block length is a finite number ≥ 0")
	case !validShape(c.ServiceShape):
		return errors.New("sim: a service shape holds finite ratios > 0")
	case c.ComputeScale < 0 || math.IsNaN(c.ComputeScale) || math.IsInf(c.ComputeScale, 0):
		return errors.New("sim: the compute scale must be a finite number ≥ 0 (0: as profiled)")
	}
	if err := c.Mix.Validate(); err != nil {
		return fmt.Errorf("sim: mix: %w", err)
	}
	for _, w := range c.Workers {
		if _, ok := catalog.FindClass(c.Classes, w); !ok {
			return fmt.Errorf("sim: worker class %q is not among the classes", w)
		}
	}
	for i, in := range c.Interference {
		if in.Worker < 0 || in.Factor < 1 || in.For <= 0 {
			return fmt.Errorf("sim: interference %d: want a worker index ≥ 0, a duration > 0 and a factor ≥ 1", i)
		}
	}
	return nil
}

// validShape says whether every ratio of a service shape is finite and
// positive.
func validShape(r []float64) bool {
	for _, x := range r {
		if !(x > 0) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
