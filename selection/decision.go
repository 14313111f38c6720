package selection

import (
	"fmt"
	"math"
	"strings"

	"github.com/infaas/infaas/health"
)

// Request is one query's requirements as selection sees them. The caller
// validates the values (negative targets, accuracy over 100); here a value
// ≤ 0 means "no requirement".
type Request struct {
	Kind Kind   // what Name names; KindAuto resolves it (see Kind)
	Name string // variant name, architecture name or use-case ID "task/dataset"
	// Batch is the number of samples in the request; < 1 means 1.
	Batch int
	// LatencyMs is the target for the request's latency, queueing
	// included, compared with p99 estimates.
	LatencyMs float64
	// MinAccuracy is in percent, like catalog.Variant.Accuracy.
	MinAccuracy float64
	// MaxCostPer1k is a ceiling in USD per 1,000 queries on the serving
	// variant's cost (see Snapshot.VariantCostPer1k).
	MaxCostPer1k float64
	// Strict refuses the request rather than serve it with an estimate
	// that misses its requirements.
	Strict bool
}

// Asked is what the request asks of the variant that serves it — its
// latency target, its accuracy floor, whether it named the variant — as
// the model autoscaler must keep meeting it (autoscale.TrafficLog, and the
// workers' reports of every controller's traffic).
func (r *Request) Asked() health.Asked {
	return health.Asked{LatencyMs: max(r.LatencyMs, 0), MinAccuracy: max(r.MinAccuracy, 0), Pinned: r.Kind == KindVariant}
}

// Action is what the controller must do with a request.
type Action uint8

// Actions. What the controller does for each:
//
//	Serve         forward the request to Replica (it may still be loading:
//	              the worker queues it until the replica is ready).
//	ServeAndLoad  start loading variant Load on LoadWorker in the
//	              background, and forward the request to Replica without
//	              waiting for that load.
//	LoadAndServe  nothing that can serve the request is loaded: load
//	              variant Load (== Variant) on LoadWorker (== Worker), wait
//	              for it, then forward the request to the new replica.
//	Refuse        answer with an error chosen by Reason; if Load ≥ 0, start
//	              that load in the background anyway (the strict request
//	              was refused only because the variant is not loaded yet).
//
// Best effort is not an action: it is any serving decision with Met false.
const (
	Refuse Action = iota
	Serve
	ServeAndLoad
	LoadAndServe
)

func (a Action) String() string {
	switch a {
	case Serve:
		return "serve"
	case ServeAndLoad:
		return "serve-and-load"
	case LoadAndServe:
		return "load-and-serve"
	}
	return "refuse"
}

// Reason is a compact code for why a decision was made; String gives a
// stable snake-free word for metrics and responses, Decision.Message a
// sentence for people.
type Reason uint8

// Reasons, grouped by the action they come with.
const (
	// Serve, with Met true: a loaded, usable replica meets the requirements.
	ReasonLoaded Reason = iota
	// ServeAndLoad: no loaded replica meets them; the cheapest variant
	// that can is being loaded off the critical path, and the closest
	// replica serves meanwhile.
	ReasonLoading
	// LoadAndServe: nothing is loaded for any candidate; the cheapest
	// variant that can meet the requirements is loaded first.
	ReasonColdStart
	// Serve: the cheapest variant that can meet the requirements already
	// has replicas, busy or degraded; selection starts no second load
	// (replication is the model autoscaler's job) and serves the closest.
	ReasonBusy
	// Serve: as ReasonBusy, but its replica is still loading.
	ReasonLoadInProgress
	// Serve or LoadAndServe: the variants that could meet the requirements
	// fit no worker (see Decision.Unplaced); serving the closest. As a
	// refusal: nothing is loaded and nothing fits any worker.
	ReasonNoCapacity
	// Serve or LoadAndServe, Met false: no candidate can meet the
	// requirements even when loaded; serving the closest.
	ReasonBestEffort
	// Serve: only replicas on unhealthy replicas or workers are left.
	ReasonUnhealthyOnly

	// Refusals.
	ReasonUnknown       // the name is no variant, architecture or use case
	ReasonNoVariants    // the architecture or use case has no variants
	ReasonNotConfigured // the fixed policy has no variant for it
	ReasonBatch         // the batch exceeds every max batch (Limit: the largest)
	ReasonAccuracy      // no variant reaches the accuracy (Limit: the best)
	ReasonUnsatisfiable // strict, and no candidate can meet the requirements even when loaded
	ReasonNotReady      // strict, and a candidate can meet them but not right now (loading, busy, no capacity)
)

var reasonWords = [...]string{
	ReasonLoaded:         "loaded",
	ReasonLoading:        "loading",
	ReasonColdStart:      "cold-start",
	ReasonBusy:           "busy",
	ReasonLoadInProgress: "load-in-progress",
	ReasonNoCapacity:     "no-capacity",
	ReasonBestEffort:     "best-effort",
	ReasonUnhealthyOnly:  "unhealthy-only",
	ReasonUnknown:        "unknown",
	ReasonNoVariants:     "no-variants",
	ReasonNotConfigured:  "not-configured",
	ReasonBatch:          "batch-too-large",
	ReasonAccuracy:       "accuracy-unreachable",
	ReasonUnsatisfiable:  "unsatisfiable",
	ReasonNotReady:       "not-ready",
}

func (r Reason) String() string {
	if int(r) < len(reasonWords) {
		return reasonWords[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Decision is a policy's answer for one request. Select fills it in place
// so that the hot path allocates nothing. Indexes refer to the snapshot the
// decision was made on (Snapshot.Variant, .Replica, .Worker); -1 means none.
// Variant indexes are instance indexes: Snapshot.Variant(d.Load).Hardware
// is the hardware class the load was placed for, and LoadWorker is of that
// class.
type Decision struct {
	Action Action
	Reason Reason
	// Met: the estimate meets the latency target and the serving variant's
	// cost is within the ceiling (accuracy is never traded away).
	Met bool
	// EstimateMs is the estimated latency of this request: p99 at its batch
	// + queueing on the replica (+ what is left of its load, or the whole
	// load for LoadAndServe). Kept on a strict refusal: what serving would
	// have taken.
	EstimateMs float64
	// CostPer1k is the serving instance's cost, USD per 1,000 queries.
	CostPer1k float64

	Variant int32 // variant instance that serves the request
	Replica int32 // replica that serves it; -1 for LoadAndServe
	Worker  int32 // worker of Replica, or LoadWorker for LoadAndServe

	Load       int32 // variant instance to load (ServeAndLoad, LoadAndServe, or a Refuse's background load)
	LoadWorker int32 // where to load it

	// Unplaced is a variant instance that would have been preferred but
	// fits no worker: a scale-out signal for the cluster autoscaler (a
	// worker of class Snapshot.Variant(Unplaced).Hardware). Set with any
	// action.
	Unplaced int32

	// Batch is the batch size decided for (≥ 1). Limit is the largest max
	// batch for ReasonBatch, the best accuracy for ReasonAccuracy.
	Batch int
	Limit float64
}

func (d *Decision) reset(batch int) {
	*d = Decision{Batch: batch, Variant: -1, Replica: -1, Worker: -1, Load: -1, LoadWorker: -1, Unplaced: -1}
}

// Background says whether the controller must start a load without
// waiting for it.
func (d *Decision) Background() bool {
	return d.Load >= 0 && d.Action != LoadAndServe
}

// Message describes d in a sentence for people (responses, logs). It
// allocates; s must be the snapshot d was made on.
func (d *Decision) Message(s *Snapshot) string {
	var b strings.Builder
	vname := func(i int32) string { return s.Variant(i).Name }
	class := func(i int32) string { return s.Variant(i).Hardware }
	switch d.Action {
	case Serve:
		r := s.Replica(d.Replica)
		fmt.Fprintf(&b, "served by %s on %s (variant %s, class %s)", r.ID, r.Worker, vname(d.Variant), class(d.Variant))
	case ServeAndLoad:
		r := s.Replica(d.Replica)
		fmt.Fprintf(&b, "served by %s on %s (variant %s, class %s) while %s loads on %s (class %s) off the critical path",
			r.ID, r.Worker, vname(d.Variant), class(d.Variant), vname(d.Load), s.Worker(d.LoadWorker).ID, class(d.Load))
	case LoadAndServe:
		fmt.Fprintf(&b, "loading %s on %s (class %s), then serving", vname(d.Load), s.Worker(d.LoadWorker).ID, class(d.Load))
	case Refuse:
		b.WriteString("refused: ")
	}
	if d.Action != Refuse {
		fmt.Fprintf(&b, ": estimated %s, %s per 1k queries", ms(d.EstimateMs), usd(d.CostPer1k))
		if d.Met {
			b.WriteString(", requirements met")
		} else {
			b.WriteString(", requirements NOT met")
		}
		b.WriteString("; ")
	}
	switch d.Reason {
	case ReasonLoaded:
		b.WriteString("a loaded replica meets the requirements")
	case ReasonLoading:
		b.WriteString("no loaded replica meets the requirements; loading the cheapest variant that can")
	case ReasonColdStart:
		b.WriteString("nothing is loaded; loading the cheapest variant that can meet the requirements")
	case ReasonBusy:
		b.WriteString("the cheapest variant that can meet the requirements is loaded but busy or degraded; serving the closest replica")
	case ReasonLoadInProgress:
		b.WriteString("the cheapest variant that can meet the requirements is still loading; serving the closest replica")
	case ReasonNoCapacity:
		b.WriteString("the variants that could meet the requirements fit no worker")
	case ReasonBestEffort:
		b.WriteString("no variant can meet the requirements; serving the closest")
	case ReasonUnhealthyOnly:
		b.WriteString("only unhealthy replicas are left")
	case ReasonUnknown:
		b.WriteString("unknown model")
	case ReasonNoVariants:
		b.WriteString("it has no variants")
	case ReasonNotConfigured:
		b.WriteString("the fixed policy has no variant configured for it")
	case ReasonBatch:
		fmt.Fprintf(&b, "batch %d exceeds the largest max batch %d", d.Batch, int(d.Limit))
	case ReasonAccuracy:
		fmt.Fprintf(&b, "no variant reaches the minimum accuracy (the best is %.2f%%)", d.Limit)
	case ReasonUnsatisfiable:
		fmt.Fprintf(&b, "no variant can meet the requirements, even loaded (the closest estimate is %s)", ms(d.EstimateMs))
	case ReasonNotReady:
		b.WriteString("a variant can meet the requirements but is not ready; retry shortly")
	}
	if d.Action == Refuse && d.Load >= 0 {
		fmt.Fprintf(&b, " (loading %s on %s, class %s)", vname(d.Load), s.Worker(d.LoadWorker).ID, class(d.Load))
	}
	if d.Unplaced >= 0 {
		fmt.Fprintf(&b, "; %s on class %s would be preferred but fits no worker", vname(d.Unplaced), class(d.Unplaced))
	}
	return b.String()
}

func ms(v float64) string {
	if math.IsInf(v, 1) {
		return "unknown ms"
	}
	return fmt.Sprintf("%.3g ms", v)
}

func usd(v float64) string {
	if math.IsInf(v, 1) {
		return "$unknown"
	}
	return fmt.Sprintf("$%.4g", v)
}
