package selection

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/infaas/infaas/catalog"
)

// Explanation is a decision with its reasons: every candidate the request
// named, why each was dropped, and how the rest scored.
type Explanation struct {
	Policy   string
	Request  Request
	Decision Decision
	// Summary is Decision.Message.
	Summary string
	// Steps says how the rules went, in order.
	Steps []string
	// Candidates are the variant instances the request named, cheapest
	// first.
	Candidates []CandidateReport
}

// CandidateReport is one variant instance (a variant on one hardware
// class) as selection saw it.
type CandidateReport struct {
	Variant      string
	Class        string // hardware class of the instance's profile
	Architecture string
	Accuracy     float64
	MaxBatch     int
	CostPer1k    float64 // USD per 1,000 queries; +Inf unknown
	P99Ms        float64 // at the request's batch
	LoadMs       float64
	// Dropped says why it is no candidate at all (batch, accuracy); empty
	// when it is one.
	Dropped string
	// Notes: requirements it misses, and what rule 4 thinks of it.
	Notes []string
	// Placement: where a new replica would go (a worker of Class), or why
	// nowhere.
	Placement string
	Replicas  []ReplicaReport
}

// ReplicaReport is one replica of a candidate.
type ReplicaReport struct {
	Replica    string
	Worker     string
	Tier       string // usable, degraded or unhealthy
	EstimateMs float64
	QueueMs    float64
	LoadLeftMs float64
	Verdict    string
}

// Explain is Select with reasons, for the infaas policy. It allocates.
func Explain(s *Snapshot, r *Request, now time.Time) Explanation {
	cands, ok := s.candidates(r.Kind, r.Name)
	return explain(s, "infaas", cands, ok, ReasonUnknown, r, now)
}

// String renders the explanation for people.
func (e Explanation) String() string {
	var b strings.Builder
	r := e.Request
	fmt.Fprintf(&b, "request: %s %q, batch %d", r.Kind, r.Name, max(r.Batch, 1))
	if r.LatencyMs > 0 {
		fmt.Fprintf(&b, ", latency ≤ %g ms", r.LatencyMs)
	}
	if r.MinAccuracy > 0 {
		fmt.Fprintf(&b, ", accuracy ≥ %g%%", r.MinAccuracy)
	}
	if r.MaxCostPer1k > 0 {
		fmt.Fprintf(&b, ", cost ≤ $%g per 1k", r.MaxCostPer1k)
	}
	if r.Strict {
		b.WriteString(", strict")
	}
	fmt.Fprintf(&b, "\npolicy %s: %s [%s]\n", e.Policy, e.Decision.Action, e.Decision.Reason)
	fmt.Fprintf(&b, "  %s\n", e.Summary)
	if len(e.Candidates) > 0 {
		b.WriteString("candidates, cheapest first:\n")
	}
	for _, c := range e.Candidates {
		fmt.Fprintf(&b, "  %s on %s (accuracy %.2f%%, max batch %d, %s per 1k)", c.Variant, c.Class, c.Accuracy, c.MaxBatch, usd(c.CostPer1k))
		if c.Dropped != "" {
			fmt.Fprintf(&b, ": dropped: %s\n", c.Dropped)
			continue
		}
		fmt.Fprintf(&b, ": p99 %s, load %s\n", ms(c.P99Ms), ms(c.LoadMs))
		for _, n := range c.Notes {
			fmt.Fprintf(&b, "    - %s\n", n)
		}
		fmt.Fprintf(&b, "    placement: %s\n", c.Placement)
		for _, rr := range c.Replicas {
			fmt.Fprintf(&b, "    replica %s on %s (%s): estimate %s (queue %s", rr.Replica, rr.Worker, rr.Tier, ms(rr.EstimateMs), ms(rr.QueueMs))
			if rr.LoadLeftMs > 0 {
				fmt.Fprintf(&b, ", load left %s", ms(rr.LoadLeftMs))
			}
			fmt.Fprintf(&b, "): %s\n", rr.Verdict)
		}
	}
	if len(e.Steps) > 0 {
		b.WriteString("steps:\n")
	}
	for _, st := range e.Steps {
		fmt.Fprintf(&b, "  %s\n", st)
	}
	return b.String()
}

// explain is the reference implementation of decide: the same rules
// written plainly, with full scans and sorted lists instead of running
// minima and precomputed indexes. Tests check that the two agree.
func explain(s *Snapshot, policy string, cands []int32, found bool, refuse Reason, r *Request, now time.Time) Explanation {
	q := needOf(r)
	nowNs := now.UnixNano()
	e := Explanation{Policy: policy, Request: *r}
	d := &e.Decision
	d.reset(q.batch)
	step := func(format string, args ...any) { e.Steps = append(e.Steps, fmt.Sprintf(format, args...)) }
	done := func() Explanation {
		e.Summary = d.Message(s)
		return e
	}
	if !found {
		d.Reason = refuse
		step("%s %q: %s", r.Kind, r.Name, refuse)
		return done()
	}
	if len(cands) == 0 {
		d.Reason = ReasonNoVariants
		step("%s %q has no variants", r.Kind, r.Name)
		return done()
	}

	c := s.cat
	workerByID := make(map[string]*Worker, len(s.workers))
	for i := range s.workers {
		workerByID[s.workers[i].ID] = &s.workers[i]
	}
	// A replica runs as its variant's instance of its worker's class, else
	// as its reference instance.
	repsOf := make(map[int32][]int, len(s.replicas))
	for j := range s.replicas {
		rep := &s.replicas[j]
		v, ok := s.Instance(rep.Variant, workerByID[rep.Worker].Class.Name)
		if !ok {
			v = c.vnames[c.names[rep.Variant].variant].ref
		}
		repsOf[v] = append(repsOf[v], j)
	}
	type repOpt struct {
		v, j      int32
		t         tier
		est, cost float64
		costOK    bool
	}
	type varOpt struct {
		v              int32
		p, cost        float64
		healthy, loads int
		worker         int32
	}
	var (
		reps     []repOpt
		kept     []varOpt
		feasible []varOpt // could meet the requirements when loaded
		maxBatch int
		bestAcc  = math.Inf(-1)
	)
	order := slices.Clone(cands)
	slices.SortFunc(order, func(a, b int32) int { return cmp.Or(cmp.Compare(c.vi[a].cost, c.vi[b].cost), cmp.Compare(a, b)) })
	for _, v := range order {
		cv := &c.variants[v]
		vi := &c.vi[v]
		cr := CandidateReport{Variant: cv.Name, Class: cv.Hardware, Architecture: cv.Architecture, Accuracy: cv.Accuracy,
			MaxBatch: cv.MaxBatch, CostPer1k: vi.cost, LoadMs: vi.loadMs}
		maxBatch = max(maxBatch, cv.MaxBatch)
		if cv.MaxBatch < q.batch {
			cr.Dropped = fmt.Sprintf("max batch %d < batch %d", cv.MaxBatch, q.batch)
			e.Candidates = append(e.Candidates, cr)
			continue
		}
		bestAcc = max(bestAcc, cv.Accuracy)
		if cv.Accuracy < q.minAcc {
			cr.Dropped = fmt.Sprintf("accuracy %.2f%% below the minimum %.2f%%", cv.Accuracy, q.minAcc)
			e.Candidates = append(e.Candidates, cr)
			continue
		}
		p := s.p99(v, q.batch)
		cr.P99Ms = p
		costOK := q.costOK(vi.cost)
		if !costOK {
			cr.Notes = append(cr.Notes, fmt.Sprintf("cost %s per 1k over the ceiling $%g", usd(vi.cost), q.maxCost))
		}
		if !q.meets(p) {
			cr.Notes = append(cr.Notes, fmt.Sprintf("p99 %s at batch %d over the target %g ms: cannot meet it even loaded", ms(p), q.batch, q.target))
		}

		vo := varOpt{v: v, p: p, cost: vi.cost, worker: -1}
		for _, j := range repsOf[v] {
			rep := &s.replicas[j]
			w := workerByID[rep.Worker]
			ro := repOpt{v: v, j: int32(j), t: tierOf(rep, w), est: s.estimate(int32(j), p, nowNs), cost: vi.cost, costOK: costOK}
			rr := ReplicaReport{Replica: rep.ID, Worker: rep.Worker, Tier: ro.t.String(), EstimateMs: ro.est,
				QueueMs: s.queueMs(int32(j)), LoadLeftMs: s.loadLeftMs(int32(j), nowNs)}
			switch {
			case !w.Healthy:
				rr.Verdict = "worker unhealthy: last resort"
			case !rep.Healthy:
				rr.Verdict = "replica unhealthy: last resort"
			case rep.Overloaded:
				rr.Verdict = "overloaded: only as a stopgap"
			case rep.Interfered:
				rr.Verdict = "interfered: only as a stopgap"
			case !costOK:
				rr.Verdict = "variant over the cost ceiling"
			case !q.meets(ro.est):
				rr.Verdict = fmt.Sprintf("estimate over the target %g ms", q.target)
			default:
				rr.Verdict = "meets the requirements"
			}
			if ro.t <= tierDegraded {
				vo.healthy++
				if rep.Loading {
					vo.loads++
				}
			}
			reps = append(reps, ro)
			cr.Replicas = append(cr.Replicas, rr)
		}

		// Placement: every worker checked; the best is the least utilised,
		// then the one with most free memory, then the first.
		var fails [hostMemory + 1]int
		var others []string // classes of the workers of another class
		fits := 0
		for wi := range s.workers {
			w := &s.workers[wi]
			if f := c.hostCheck(v, w); f != hostOK {
				fails[f]++
				if f == hostClass {
					others = append(others, w.Class.Name)
				}
				continue
			}
			fits++
			if vo.worker < 0 {
				vo.worker = int32(wi)
				continue
			}
			b := &s.workers[vo.worker]
			if w.Utilization < b.Utilization || w.Utilization == b.Utilization && w.FreeMemoryBytes > b.FreeMemoryBytes {
				vo.worker = int32(wi)
			}
		}
		if vo.worker >= 0 {
			w := &s.workers[vo.worker]
			cr.Placement = fmt.Sprintf("%s (utilisation %.0f%%, %s free; %d of %d workers fit)",
				w.ID, 100*w.Utilization, gib(w.FreeMemoryBytes), fits, len(s.workers))
		} else {
			cr.Placement = "no worker fits: " + describeFails(fails, others, cv, vi.need)
		}
		kept = append(kept, vo)
		if costOK && q.meets(p) {
			feasible = append(feasible, vo)
		}
		e.Candidates = append(e.Candidates, cr)
	}

	// Refusals before any rule can apply.
	if maxBatch < q.batch {
		d.Reason, d.Limit = ReasonBatch, float64(maxBatch)
		step("batch %d exceeds the largest max batch %d", q.batch, maxBatch)
		return done()
	}
	if len(kept) == 0 {
		d.Reason, d.Limit = ReasonAccuracy, bestAcc
		step("no variant accepting batch %d reaches accuracy %g%% (best %.2f%%)", q.batch, q.minAcc, bestAcc)
		return done()
	}
	step("%d of %d variant instances accept batch %d at accuracy ≥ %g%%; %d could meet the requirements when loaded",
		len(kept), len(cands), q.batch, q.minAcc, len(feasible))

	// Rule 3: loaded, usable replicas that meet the requirements, cheapest
	// variant first, then lowest estimate.
	var meeting []repOpt
	for _, ro := range reps {
		if ro.t == tierUsable && ro.costOK && q.meets(ro.est) {
			meeting = append(meeting, ro)
		}
	}
	label := func(v int32) string { return c.variants[v].Name + " on " + c.variants[v].Hardware }
	slices.SortFunc(meeting, func(a, b repOpt) int {
		return cmp.Or(cmp.Compare(a.cost, b.cost), cmp.Compare(a.est, b.est), cmp.Compare(a.j, b.j))
	})
	if len(meeting) > 0 {
		m := meeting[0]
		d.serve(s, m.j, m.est)
		d.Reason = ReasonLoaded
		step("rule 3: %d loaded usable replicas meet the requirements; the cheapest is %s on %s (%s)",
			len(meeting), s.replicas[m.j].ID, s.replicas[m.j].Worker, label(m.v))
		d.finish(&q, true)
		return done()
	}
	step("rule 3: no loaded usable replica meets the requirements")

	// The closest replicas: usable before degraded, then by estimate.
	var bridges, unhealthy []repOpt
	for _, ro := range reps {
		if ro.t <= tierDegraded {
			bridges = append(bridges, ro)
		} else {
			unhealthy = append(unhealthy, ro)
		}
	}
	slices.SortFunc(bridges, func(a, b repOpt) int {
		return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.est, b.est), cmp.Compare(a.j, b.j))
	})
	slices.SortFunc(unhealthy, func(a, b repOpt) int { return cmp.Or(cmp.Compare(a.est, b.est), cmp.Compare(a.j, b.j)) })

	// Rule 4: walk the feasible variants, cheapest (then fastest) first, to
	// the first that has a replica or fits a worker.
	slices.SortFunc(feasible, func(a, b varOpt) int {
		return cmp.Or(cmp.Compare(a.cost, b.cost), cmp.Compare(a.p, b.p), cmp.Compare(a.v, b.v))
	})
	var chosen *varOpt
	for i := range feasible {
		fo := &feasible[i]
		if fo.healthy > 0 || fo.worker >= 0 {
			chosen = fo
			break
		}
		if d.Unplaced < 0 {
			d.Unplaced = fo.v
			step("rule 4: %s could meet the requirements but fits no worker (scale-out signal)", label(fo.v))
		}
	}
	anyF := len(feasible) > 0
	switch {
	case chosen != nil && chosen.healthy > 0:
		b := bridges[0]
		d.serve(s, b.j, b.est)
		d.Reason = ReasonBusy
		if chosen.loads > 0 {
			d.Reason = ReasonLoadInProgress
		}
		step("rule 4: %s is the cheapest that can meet them and already has %d replicas (%d loading); no second load, serving the closest replica %s",
			label(chosen.v), chosen.healthy, chosen.loads, s.replicas[b.j].ID)
	case chosen != nil && len(bridges) > 0:
		b := bridges[0]
		d.serve(s, b.j, b.est)
		d.Action, d.Load, d.LoadWorker = ServeAndLoad, chosen.v, chosen.worker
		d.Reason = ReasonLoading
		step("rule 4: loading %s on %s off the critical path; serving now from the closest replica %s",
			label(chosen.v), s.workers[chosen.worker].ID, s.replicas[b.j].ID)
	case chosen != nil:
		d.loadAndServe(s, chosen.v, chosen.worker, c.vi[chosen.v].loadMs+chosen.p)
		d.Reason = ReasonColdStart
		step("rule 4: nothing is loaded; loading %s on %s and serving after the load",
			label(chosen.v), s.workers[chosen.worker].ID)
	default:
		step("rule 5: no variant that could meet the requirements can be served or placed")
		var placeable []varOpt
		for _, vo := range kept {
			if vo.worker >= 0 {
				placeable = append(placeable, vo)
			}
		}
		loadEst := func(vo varOpt) float64 { return c.vi[vo.v].loadMs + vo.p }
		slices.SortFunc(placeable, func(a, b varOpt) int {
			return cmp.Or(cmp.Compare(loadEst(a), loadEst(b)), cmp.Compare(a.cost, b.cost), cmp.Compare(a.v, b.v))
		})
		switch {
		case len(bridges) > 0:
			b := bridges[0]
			d.serve(s, b.j, b.est)
			d.Reason = bestEffortReason(anyF)
			step("rule 5: best effort on the closest replica %s", s.replicas[b.j].ID)
		case len(placeable) > 0:
			pl := placeable[0]
			d.loadAndServe(s, pl.v, pl.worker, loadEst(pl))
			d.Reason = bestEffortReason(anyF)
			step("rule 5: nothing healthy is loaded; best effort: loading the closest, %s, on %s",
				label(pl.v), s.workers[pl.worker].ID)
		case len(unhealthy) > 0:
			u := unhealthy[0]
			d.serve(s, u.j, u.est)
			d.Reason = ReasonUnhealthyOnly
			step("rule 5: only unhealthy replicas are left and nothing fits a worker; using %s", s.replicas[u.j].ID)
		default:
			d.Reason = ReasonNoCapacity
			step("rule 5: nothing is loaded and nothing fits any worker")
			return done()
		}
	}
	before := d.Action
	d.finish(&q, anyF)
	if before != Refuse && d.Action == Refuse {
		step("strict: the estimate %s misses the requirements, so refuse (%s)", ms(d.EstimateMs), d.Reason)
	}
	return done()
}

// describeFails says why no worker can host instance v; others are the
// classes of the workers that failed on class.
func describeFails(fails [hostMemory + 1]int, others []string, v *catalog.Variant, need int64) string {
	if fails == [hostMemory + 1]int{} {
		return "there are no workers"
	}
	var parts []string
	if n := fails[hostUnhealthy]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d unhealthy", n))
	}
	if n := fails[hostProvider]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d lack provider %s", n, provider(v.Provider)))
	}
	if n := fails[hostClass]; n > 0 {
		slices.Sort(others)
		others = slices.Compact(others)
		are, worker := "is", "worker is"
		if n > 1 {
			are, worker = "are", "workers are"
		}
		parts = append(parts, fmt.Sprintf("%d %s of another class (%s class %s; this profile is for %s)",
			n, are, worker, strings.Join(others, ", "), v.Hardware))
	}
	if n := fails[hostCores]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d have fewer than %d cores", n, v.Threads))
	}
	if n := fails[hostMemory]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d lack memory (needs %s free)", n, gib(need)))
	}
	return strings.Join(parts, ", ")
}

func gib(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }
