package selection

import (
	"math"
	"time"
)

// Infaas is the default policy: INFaaS's selection on query arrival,
// improved (see the package documentation for the rules).
type Infaas struct{}

var _ Policy = (*Infaas)(nil)

// Name implements Policy.
func (*Infaas) Name() string { return "infaas" }

// Select implements Policy; see the package function Select.
func (*Infaas) Select(s *Snapshot, r *Request, now time.Time, d *Decision) { Select(s, r, now, d) }

// Explain implements Policy; see the package function Explain.
func (*Infaas) Explain(s *Snapshot, r *Request, now time.Time) Explanation {
	return Explain(s, r, now)
}

// Select decides how to serve r with the infaas policy and writes the
// decision into d. It is pure (no I/O, no clock but now, no randomness) and
// allocates nothing.
func Select(s *Snapshot, r *Request, now time.Time, d *Decision) {
	cands, ok := s.candidates(r.Kind, r.Name)
	if !ok {
		d.reset(batchOf(r))
		d.Reason = ReasonUnknown
		return
	}
	decide(s, cands, r, now.UnixNano(), d)
}

// need is a request's requirements, normalised.
type need struct {
	batch   int
	target  float64 // ms; 0: none
	minAcc  float64
	maxCost float64 // USD per 1k; 0: none
	strict  bool
}

func batchOf(r *Request) int { return max(r.Batch, 1) }

func needOf(r *Request) need {
	return need{
		batch:   batchOf(r),
		target:  max(r.LatencyMs, 0),
		minAcc:  max(r.MinAccuracy, 0),
		maxCost: max(r.MaxCostPer1k, 0),
		strict:  r.Strict,
	}
}

func (q *need) meets(est float64) bool   { return q.target == 0 || est <= q.target }
func (q *need) costOK(cost float64) bool { return q.maxCost == 0 || cost <= q.maxCost }

// decide runs the infaas rules over cands, which must be in (cost, index)
// order (the early exit of rule 3 relies on it). Explain is its reference
// implementation: keep the two in step.
func decide(s *Snapshot, cands []int32, r *Request, nowNs int64, d *Decision) {
	q := needOf(r)
	d.reset(q.batch)
	if len(cands) == 0 {
		d.Reason = ReasonNoVariants
		return
	}
	c := s.cat
	var (
		maxBatch int32
		bestAcc  = math.Inf(-1)
		kept     int
		anyF     bool // some candidate could meet the requirements when loaded

		sr         int32 = -1 // rule 3: best replica that meets them
		sCost, sEs float64
		br         int32 = -1 // bridge: closest usable or degraded replica
		bTier      tier
		bEst       float64
		ur         int32 = -1 // closest unhealthy replica
		uEst       float64
		fv         int32 = -1 // rule 4: cheapest feasible variant with a replica or a worker
		fCost, fP  float64
		pv         int32 = -1 // cheapest feasible variant with neither
		pCost, pP  float64
		ev         int32 = -1 // closest placeable variant, for best effort
		eEst, eCos float64
	)
	for _, v := range cands {
		vi := &c.vi[v]
		if sr >= 0 && vi.cost > sCost {
			break // sorted by cost: nothing left can beat the rule-3 pick
		}
		maxBatch = max(maxBatch, vi.maxBatch)
		if int(vi.maxBatch) < q.batch {
			continue
		}
		bestAcc = max(bestAcc, vi.acc)
		if vi.acc < q.minAcc {
			continue
		}
		kept++
		p := s.p99(v, q.batch)
		costOK := q.costOK(vi.cost)
		sp := s.vrep[v]
		for j := sp.off; j < sp.off+sp.n; j++ {
			t := s.rep[j].tier
			est := s.estimate(j, p, nowNs)
			if t == tierUnhealthy {
				if ur < 0 || est < uEst || est == uEst && j < ur {
					ur, uEst = j, est
				}
				continue
			}
			if t == tierUsable && costOK && q.meets(est) &&
				(sr < 0 || vi.cost < sCost || vi.cost == sCost && (est < sEs || est == sEs && j < sr)) {
				sr, sCost, sEs = j, vi.cost, est
			}
			if br < 0 || t < bTier || t == bTier && (est < bEst || est == bEst && j < br) {
				br, bTier, bEst = j, t, est
			}
		}
		dy := &s.vdyn[v]
		if costOK && q.meets(p) {
			anyF = true
			if dy.healthy > 0 || dy.best >= 0 {
				if fv < 0 || variantLess(vi.cost, p, v, fCost, fP, fv) {
					fv, fCost, fP = v, vi.cost, p
				}
			} else if pv < 0 || variantLess(vi.cost, p, v, pCost, pP, pv) {
				pv, pCost, pP = v, vi.cost, p
			}
		}
		if dy.best >= 0 {
			if e := vi.loadMs + p; ev < 0 || variantLess(e, vi.cost, v, eEst, eCos, ev) {
				ev, eEst, eCos = v, e, vi.cost
			}
		}
	}

	// Rule 3: a loaded, usable replica meets the requirements.
	if sr >= 0 {
		d.serve(s, sr, sEs)
		d.Reason = ReasonLoaded
		d.finish(&q, true)
		return
	}
	if int(maxBatch) < q.batch {
		d.Reason, d.Limit = ReasonBatch, float64(maxBatch)
		return
	}
	if kept == 0 {
		d.Reason, d.Limit = ReasonAccuracy, bestAcc
		return
	}
	if pv >= 0 && (fv < 0 || variantLess(pCost, pP, pv, fCost, fP, fv)) {
		d.Unplaced = pv
	}
	switch {
	case fv >= 0 && s.vdyn[fv].healthy > 0: // rule 4, already loaded or loading
		d.serve(s, br, bEst)
		d.Reason = ReasonBusy
		if s.vdyn[fv].loading > 0 {
			d.Reason = ReasonLoadInProgress
		}
	case fv >= 0 && br >= 0: // rule 4, load off the critical path
		d.serve(s, br, bEst)
		d.Action, d.Load, d.LoadWorker = ServeAndLoad, fv, s.vdyn[fv].best
		d.Reason = ReasonLoading
	case fv >= 0: // rule 4, nothing loaded: wait for the load
		d.loadAndServe(s, fv, s.vdyn[fv].best, c.vi[fv].loadMs+fP)
		d.Reason = ReasonColdStart
	case br >= 0: // rule 5
		d.serve(s, br, bEst)
		d.Reason = bestEffortReason(anyF)
	case ev >= 0:
		d.loadAndServe(s, ev, s.vdyn[ev].best, eEst)
		d.Reason = bestEffortReason(anyF)
	case ur >= 0:
		d.serve(s, ur, uEst)
		d.Reason = ReasonUnhealthyOnly
	default:
		d.Reason = ReasonNoCapacity
		return
	}
	d.finish(&q, anyF)
}

// variantLess orders by (a, b, index) lexicographically.
func variantLess(a1, b1 float64, i1 int32, a2, b2 float64, i2 int32) bool {
	if a1 != a2 {
		return a1 < a2
	}
	if b1 != b2 {
		return b1 < b2
	}
	return i1 < i2
}

// bestEffortReason: when some variant could meet the requirements but none
// of them is loaded or fits a worker, the shortfall is capacity.
func bestEffortReason(anyF bool) Reason {
	if anyF {
		return ReasonNoCapacity
	}
	return ReasonBestEffort
}

func (d *Decision) serve(s *Snapshot, j int32, est float64) {
	v := s.rep[j].variant
	d.Action = Serve
	d.Variant, d.Replica, d.Worker = v, j, s.rep[j].worker
	d.EstimateMs, d.CostPer1k = est, s.cat.vi[v].cost
}

func (d *Decision) loadAndServe(s *Snapshot, v, w int32, est float64) {
	d.Action = LoadAndServe
	d.Variant, d.Replica, d.Worker = v, -1, w
	d.Load, d.LoadWorker = v, w
	d.EstimateMs, d.CostPer1k = est, s.cat.vi[v].cost
}

// finish sets Met and turns a strict request that would miss its
// requirements into a refusal. anyF: some candidate could meet them when
// loaded. The refusal keeps a load of such a candidate (rule 4) as a
// background load, and drops a best-effort one.
func (d *Decision) finish(q *need, anyF bool) {
	d.Met = q.meets(d.EstimateMs) && q.costOK(d.CostPer1k)
	if !q.strict || d.Met {
		return
	}
	if d.Reason != ReasonLoading && d.Reason != ReasonColdStart {
		d.Load, d.LoadWorker = -1, -1
	}
	switch {
	case !anyF:
		d.Reason = ReasonUnsatisfiable
	case d.Reason != ReasonNoCapacity:
		d.Reason = ReasonNotReady
	}
	d.Action = Refuse
	d.Variant, d.Replica, d.Worker = -1, -1, -1
}
