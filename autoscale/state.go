package autoscale

import (
	"fmt"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
)

// State is what both autoscalers read: the catalog's variants and classes,
// the workers, the replicas with their demand, and the requirements of the
// traffic each variant carried.
type State struct {
	// Variants are the runnable variants; each is a candidate on every
	// class of Classes it has a profile for (catalog.Variant.OnClass).
	Variants []catalog.Variant
	// Classes are the hardware classes with their prices.
	Classes []catalog.HardwareClass
	// Epoch names the Variants and Classes: a policy re-indexes them
	// only when it differs from the last step's (0 re-indexes every step).
	// Bump it whenever either changes; the controller passes its catalog
	// view's generation, the simulator a constant.
	Epoch   uint64
	Workers []Worker
	// Replicas are every replica the workers report (and loads the
	// controller started that no report shows yet, as Loading).
	Replicas []Replica
	// Traffic is, per variant name, what the requests it served asked
	// for. A variant with replicas and no entry is treated as carrying
	// requests that want its accuracy and state no latency target.
	Traffic map[string]Traffic
	// Unplaced counts, per class, the loads selection wanted to place and
	// could not since the last step (selection.Decision.Unplaced).
	Unplaced map[string]int
	// Starting counts, per class, workers the provider started that have
	// not joined yet.
	Starting map[string]int
}

// Worker is one worker as the autoscalers see it.
type Worker struct {
	ID    string
	Class string
	// Cores available to replicas (0: the class's). A CPU replica occupies
	// its variant's Threads of them.
	Cores           int
	MemoryBytes     int64
	FreeMemoryBytes int64
	Utilization     float64 // busy fraction, 0..1
	Healthy         bool
	Draining        bool
	// Removable: the provider started it and may stop it (workers that
	// joined on their own are never removed). Started is when; the newest
	// is removed first, and its replicas are the first to go.
	Removable bool
	Started   time.Time
}

// Replica is one replica with its recent demand.
type Replica struct {
	ID      string
	Worker  string
	Variant string
	Loading bool
	// Draining replicas are on their way out: they count for nothing.
	Draining   bool
	Interfered bool
	Overloaded bool
	// Demand is the samples per second asked of the replica: admitted and
	// refused requests × their samples, over the monitor's window.
	Demand float64
	// Outstanding samples queued or running now.
	Outstanding int
	// Slowness is how many times slower than its profile the replica has
	// run lately (health.Slowness, as the worker reports it and the
	// dispatcher reads it): the replica sustains its profiled capacity ÷
	// this. 0 and values below 1 count as 1.
	Slowness float64
}

// Busy reports whether the replica has work or recent demand.
func (r Replica) Busy() bool { return r.Demand > 0 || r.Outstanding > 0 }

// Traffic is the requirements of the requests a variant served, over the
// recent window: what any replacement must also meet.
type Traffic = health.Asked

// Kind is what an action does.
type Kind string

// Actions. Load-type actions name Variant, Class and Worker; Unload names
// Replica and Worker; worker actions name Class and Worker.
const (
	Replicate    Kind = "replicate"     // load one more replica of the variant in use
	Switch       Kind = "switch"        // load another variant to replace From (scale up)
	Downgrade    Kind = "downgrade"     // load a cheaper variant to replace From (scale down)
	Unload       Kind = "unload"        // unload one replica
	AddWorker    Kind = "add-worker"    // start a worker of Class
	DrainWorker  Kind = "drain-worker"  // place nothing on Worker, unload its replicas
	RemoveWorker Kind = "remove-worker" // stop Worker
)

// Action is one step an autoscaler asks for, with why.
type Action struct {
	Kind         Kind
	Architecture string
	Variant      string // the variant to load, or the replica's variant
	From         string // the variant replaced (Switch, Downgrade, and the Unload that completes them)
	Class        string
	Worker       string
	Replica      string // Unload
	// Reason is a stable word for metrics; Message a sentence with the
	// numbers; Numbers the numbers themselves.
	Reason  string
	Message string
	Numbers map[string]float64
}

func (a Action) String() string {
	s := string(a.Kind)
	if a.Variant != "" {
		s += " " + a.Variant
	}
	if a.Worker != "" {
		s += " on " + a.Worker
	} else if a.Class != "" {
		s += " (" + a.Class + ")"
	}
	return s + ": " + a.Message
}

// Reasons.
const (
	ReasonDemand      = "demand-near-capacity"
	ReasonInterfered  = "interfered"
	ReasonLowDemand   = "demand-low"
	ReasonIdle        = "idle"
	ReasonSwitchDone  = "switch-complete"
	ReasonShortage    = "placement-failed"
	ReasonUtilization = "utilization-high"
	ReasonWorkerIdle  = "worker-idle"
	ReasonDrained     = "drained"
)

// Shortage is a class the model autoscaler needed room on and found none.
type Shortage struct {
	Class  string
	Reason string
}

// Result is what one step of the model autoscaler returns.
type Result struct {
	Actions   []Action
	Shortages []Shortage
}

// ms formats milliseconds for messages.
func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func usdh(v float64) string { return fmt.Sprintf("$%.3f/h", v) }

// since is how long a condition has held, given when it started (zero: it
// does not hold).
func since(start, now time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	return now.Sub(start)
}
