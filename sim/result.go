package sim

import (
	"slices"
	"time"

	"github.com/infaas/infaas/workload"
)

// Result is one simulated run's figures.
type Result struct {
	Policy   string `json:"policy"`
	Workload string `json:"workload,omitempty"`
	Seed     uint64 `json:"seed"`
	// DurationS is the load's length; ElapsedS until the last answer.
	DurationS float64 `json:"duration_s"`
	ElapsedS  float64 `json:"elapsed_s"`

	Sent     int64 `json:"sent"`
	Answered int64 `json:"answered"`
	Refused  int64 `json:"refused"`
	Failed   int64 `json:"failed"`
	// Late are answered queries slower than their own target;
	// ViolationRate is their share of the answered ones (as loadgen
	// reports it), MissRate the share of all queries late, refused or
	// failed.
	Late          int64            `json:"late"`
	ViolationRate float64          `json:"violation_rate"`
	MissRate      float64          `json:"miss_rate"`
	RefusedWhy    map[string]int64 `json:"refused_why,omitempty"`

	ThroughputQPS float64 `json:"throughput_qps"` // answered ÷ duration
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MeanMs        float64 `json:"mean_ms"`
	// ComputeOverP50 is how much longer the batches ran than their
	// profiles' p50s at the same batch sizes — noise, interference, the
	// host's CPU and Config.ComputeScale together: Σ service time ÷
	// Σ p50 over every batch executed (0 when none was). The live
	// server's batch statistics give the same figure for a live run.
	ComputeOverP50 float64 `json:"compute_over_p50,omitempty"`

	// CostUSD is what the replicas occupied: each replica's share of its
	// worker (its cores, or the whole accelerator) at the class's price,
	// for as long as it was loaded — INFaaS's measure. WorkerCostUSD is
	// the bill for whole workers over the run.
	CostUSD       float64 `json:"cost_usd"`
	WorkerCostUSD float64 `json:"worker_cost_usd"`

	Loads          int64          `json:"loads"`
	Actions        map[string]int `json:"actions"` // autoscaler actions by kind
	VariantChanges int            `json:"variant_changes"`
	PeakWorkers    int            `json:"peak_workers"`
	PeakReplicas   int            `json:"peak_replicas"`

	Series []Sample `json:"series"`
	Events []Event  `json:"events,omitempty"`
	// Assumptions are the rules the run relied on that no measurement here
	// backs (derived profiles of absent hardware, with their sources).
	Assumptions []string `json:"assumptions,omitempty"`

	latency workload.Histogram
}

// Sample is one row of the time series (one Config.Sample long).
type Sample struct {
	T        float64 `json:"t"` // seconds since the start, at the row's end
	Offered  int     `json:"offered"`
	Answered int     `json:"answered"`
	Refused  int     `json:"refused"`
	Failed   int     `json:"failed"`
	Late     int     `json:"late"`
	P99Ms    float64 `json:"p99_ms"`
	Workers  int     `json:"workers"`
	Replicas int     `json:"replicas"`
	CostUSD  float64 `json:"cost_usd"` // cumulative
	// Variant is the variant that served most queries in the row ("" if
	// none did).
	Variant string `json:"variant,omitempty"`
}

// Event is one autoscaler action, as the live event log records it.
type Event struct {
	T       float64 `json:"t"`
	Source  string  `json:"source"`
	Action  string  `json:"action"`
	Variant string  `json:"variant,omitempty"`
	From    string  `json:"from,omitempty"`
	Worker  string  `json:"worker,omitempty"`
	Class   string  `json:"class,omitempty"`
	Reason  string  `json:"reason"`
	Message string  `json:"message,omitempty"`
}

// sample accumulates the current row.
type sample struct {
	offered, answered, refused, failed, late int
	latency                                  workload.Histogram
	// served counts answers by the snapshot instance that served them
	// (a slice, not a map by name: this is on every answer's path);
	// byName sums them by variant when the row closes.
	served []int
	byName map[string]int
}

// replicaSeconds charges a replica's occupancy from its load until t.
func (r *Result) replicaSeconds(rep *replica, t int64) {
	s := float64(t-rep.loadAt) / float64(time.Second)
	if s > 0 {
		r.CostUSD += rep.w.class.CostPerHour(max(rep.variant.Threads, 1)) * s / 3600
	}
}

// sample closes the current row of the time series.
func (e *engine) sample() {
	c := &e.cur
	s := Sample{T: float64(e.now) / float64(time.Second), Offered: c.offered, Answered: c.answered, Refused: c.refused,
		Failed: c.failed, Late: c.late, P99Ms: ms(c.latency.Quantile(0.99)), Workers: len(e.workers)}
	for _, w := range e.workers {
		s.Replicas += len(w.replicas)
	}
	// Occupancy cost so far: gone replicas were charged when removed;
	// charge the loaded ones up to now without closing them.
	s.CostUSD = e.res.CostUSD
	for _, w := range e.workers {
		for _, rep := range w.replicas {
			sec := float64(e.now-rep.loadAt) / float64(time.Second)
			s.CostUSD += w.class.CostPerHour(max(rep.variant.Threads, 1)) * sec / 3600
		}
	}
	best := 0
	for v, n := range c.served {
		if n > 0 {
			c.byName[e.snapVariantName(int32(v))] += n
		}
	}
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if c.byName[n] > best {
			best, s.Variant = c.byName[n], n
		}
	}
	if len(e.res.Series) > 0 && s.Variant != "" {
		prev := ""
		for i := len(e.res.Series) - 1; i >= 0 && prev == ""; i-- {
			prev = e.res.Series[i].Variant
		}
		if prev != "" && prev != s.Variant {
			e.res.VariantChanges++
		}
	}
	e.res.Series = append(e.res.Series, s)
	e.res.PeakWorkers = max(e.res.PeakWorkers, s.Workers)
	e.res.PeakReplicas = max(e.res.PeakReplicas, s.Replicas)
	clear(c.served)
	clear(c.byName)
	*c = sample{served: c.served, byName: c.byName}
}

// finish closes the books at the end of the run.
func (e *engine) finish() *Result {
	r := e.res
	r.Seed = e.cfg.Seed
	r.DurationS = float64(e.end) / float64(time.Second)
	r.ElapsedS = float64(e.now) / float64(time.Second)
	for _, w := range e.workers {
		for _, rep := range w.replicas {
			r.replicaSeconds(rep, e.now)
		}
		r.WorkerCostUSD += w.class.PricePerHour * float64(e.now-w.started) / float64(time.Hour)
	}
	r.WorkerCostUSD += e.removedWorkerCost
	if r.Answered > 0 {
		r.ViolationRate = float64(r.Late) / float64(r.Answered)
	}
	if r.Sent > 0 {
		r.MissRate = float64(r.Late+r.Refused+r.Failed) / float64(r.Sent)
	}
	if r.DurationS > 0 {
		r.ThroughputQPS = float64(r.Answered) / r.DurationS
	}
	if e.sumP50 > 0 {
		r.ComputeOverP50 = e.sumCompute / e.sumP50
	}
	r.P50Ms, r.P99Ms, r.MeanMs = ms(r.latency.Quantile(0.5)), ms(r.latency.Quantile(0.99)), ms(r.latency.Mean())
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
