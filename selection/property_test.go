package selection

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSelectProperties checks invariants of Select over random worlds and
// requests, and that Explain (the reference implementation) agrees with it.
func TestSelectProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	worlds, perWorld := 400, 40
	if testing.Short() {
		worlds = 50
	}
	stats := map[Reason]int{}
	var nonRef, refOnOther int // decisions served or loaded on a non-reference class; replicas on a class without a profile
	for wi := range worlds {
		nv, nw := 1+rng.IntN(40), rng.IntN(7)
		w := genWorld(rng, nv, nw, true)
		s := mustSnapshot(t, w.cat, w.st)
		for range perWorld {
			r := genRequest(rng, &w)
			var d Decision
			Select(s, &r, t0, &d)
			stats[d.Reason]++
			ex := Explain(s, &r, t0)
			if ex.Decision != d {
				t.Fatalf("world %d: Explain disagrees with Select for %+v\n Select  %+v\n Explain %+v\n%s", wi, r, d, ex.Decision, ex)
			}
			if err := checkInvariants(s, &r, &d); err != "" {
				t.Fatalf("world %d: %s\nrequest %+v\ndecision %+v\n%s", wi, err, r, d, ex)
			}
			for _, v := range []int32{d.Variant, d.Load} {
				if v >= 0 && v != s.cat.vnames[s.cat.names[s.Variant(v).Name].variant].ref {
					nonRef++
				}
			}
			if d.Replica >= 0 && s.Variant(d.Variant).Hardware != s.Worker(d.Worker).Class.Name {
				refOnOther++
			}
		}
	}
	if nonRef == 0 || refOnOther == 0 {
		t.Errorf("%d decisions used a non-reference class, %d a replica on a class without a profile; the generator misses classes", nonRef, refOnOther)
	}
	t.Logf("%d decisions on a non-reference class, %d on a replica of a class without a profile", nonRef, refOnOther)
	// Every branch should have been exercised.
	for r := ReasonLoaded; r <= ReasonNotReady; r++ {
		if r == ReasonNotConfigured {
			continue // fixed policy only
		}
		if stats[r] == 0 {
			t.Errorf("no random decision had reason %s; the generator misses a branch", r)
		}
	}
	t.Logf("reasons: %v", stats)
}

// TestFixedProperties: the fixed policy agrees with its Explain and only
// serves configured variants.
func TestFixedProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for wi := range 200 {
		w := genWorld(rng, 1+rng.IntN(40), rng.IntN(5), true)
		s := mustSnapshot(t, w.cat, w.st)
		fixed := map[string]string{}
		for _, v := range w.cat.Variants {
			if rng.IntN(3) == 0 {
				fixed[v.Architecture] = v.Name
			}
		}
		fixed["not-an-arch"] = "x"
		p, err := Lookup("fixed", Config{Fixed: fixed})
		if err != nil {
			t.Fatal(err)
		}
		for range 30 {
			r := genRequest(rng, &w)
			var d Decision
			p.Select(s, &r, t0, &d)
			if ex := p.Explain(s, &r, t0); ex.Decision != d {
				t.Fatalf("world %d: Explain disagrees for %+v\n Select  %+v\n Explain %+v\n%s", wi, r, d, ex.Decision, ex)
			}
			if d.Variant >= 0 {
				v := s.Variant(d.Variant)
				if k, _ := s.Resolve(r.Kind, r.Name); k != KindVariant && fixed[v.Architecture] != v.Name {
					t.Fatalf("fixed policy served %s, not the configured %s", v.Name, fixed[v.Architecture])
				}
			}
		}
	}
}

// checkInvariants returns what d violates, or "".
func checkInvariants(s *Snapshot, r *Request, d *Decision) string {
	q := needOf(r)
	cands, found := s.candidates(r.Kind, r.Name)
	in := func(v int32) bool {
		for _, c := range cands {
			if c == v {
				return true
			}
		}
		return false
	}
	if d.Batch != q.batch {
		return "Batch not the request's"
	}
	if !found && (d.Action != Refuse || d.Reason != ReasonUnknown) {
		return "unknown name not refused as unknown"
	}
	if d.Action != Refuse {
		if d.Variant < 0 || !in(d.Variant) {
			return "served by a variant the request does not name"
		}
		v := s.Variant(d.Variant)
		if v.Accuracy < q.minAcc {
			return "min accuracy violated"
		}
		if v.MaxBatch < q.batch {
			return "max batch violated"
		}
		if d.Met != (q.meets(d.EstimateMs) && q.costOK(d.CostPer1k)) {
			return "Met inconsistent with estimate and cost"
		}
		if q.strict && !d.Met {
			return "strict request served without meeting its requirements"
		}
		switch d.Action {
		case Serve, ServeAndLoad:
			if d.Replica < 0 || s.rep[d.Replica].variant != d.Variant || s.rep[d.Replica].worker != d.Worker {
				return "serving replica inconsistent"
			}
			// The replica runs as its variant on its worker's class, or as
			// its reference instance when that class has no instance.
			rep, wc := s.Replica(d.Replica), s.Worker(d.Worker).Class.Name
			if rep.Variant != v.Name {
				return "serving replica is of another variant"
			}
			if on, ok := s.Instance(v.Name, wc); ok && on != d.Variant {
				return "replica on a " + wc + " worker not estimated with its " + wc + " profile"
			} else if !ok && d.Variant != s.cat.vnames[s.cat.names[v.Name].variant].ref {
				return "replica on a worker of an unprofiled class not estimated with the reference profile"
			}
		case LoadAndServe:
			if d.Replica >= 0 || d.Load != d.Variant || d.LoadWorker != d.Worker {
				return "LoadAndServe fields inconsistent"
			}
		}
	} else if d.Variant >= 0 || d.Replica >= 0 || d.Worker >= 0 {
		return "refusal names a server"
	}
	if (d.Action == ServeAndLoad || d.Action == LoadAndServe) != (d.Load >= 0 && d.Action != Refuse) {
		return "Load set inconsistently with the action"
	}
	if d.Load >= 0 {
		if !in(d.Load) {
			return "loads a variant the request does not name"
		}
		if d.LoadWorker < 0 || s.cat.hostCheck(d.Load, s.Worker(d.LoadWorker)) != hostOK {
			return "loads on a worker that cannot host it"
		}
		if s.Variant(d.Load).Hardware != s.Worker(d.LoadWorker).Class.Name {
			return "loads an instance on a worker of another class"
		}
		if s.vdyn[d.Load].healthy > 0 {
			return "loads a second replica of a variant that has one"
		}
		if d.Action == Refuse && !q.strict {
			return "non-strict refusal with a load"
		}
	}

	// Never an unhealthy replica when a healthy one meeting the target
	// exists; never miss a usable replica that meets everything.
	var healthyMeets, usableMeetsAll bool
	if found {
		for _, v := range cands {
			vi := &s.cat.vi[v]
			if int(vi.maxBatch) < q.batch || vi.acc < q.minAcc {
				continue
			}
			p := s.p99(v, q.batch)
			sp := s.vrep[v]
			for j := sp.off; j < sp.off+sp.n; j++ {
				est := s.estimate(j, p, t0.UnixNano())
				rep, w := &s.replicas[j], &s.workers[s.rep[j].worker]
				if rep.Healthy && w.Healthy && q.meets(est) {
					healthyMeets = true
					if !rep.Overloaded && !rep.Interfered && q.costOK(vi.cost) {
						usableMeetsAll = true
					}
				}
			}
		}
	}
	if healthyMeets && d.Replica >= 0 && (!s.Worker(d.Worker).Healthy || !s.Replica(d.Replica).Healthy) {
		return "unhealthy replica chosen while a healthy one meets the target"
	}
	if usableMeetsAll && (d.Action != Serve || !d.Met || d.Reason != ReasonLoaded) {
		return "a usable replica meets every requirement but was not served"
	}
	if math.IsNaN(d.EstimateMs) || math.IsNaN(d.CostPer1k) {
		return "NaN in the decision"
	}
	return ""
}

func TestSelectAllocatesNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := genWorld(rng, 1000, 100, false)
	s := mustSnapshot(t, w.cat, w.st)
	reqs := make([]Request, 256)
	for i := range reqs {
		reqs[i] = genRequest(rng, &w)
	}
	fixed := map[string]string{}
	for _, v := range w.cat.Variants {
		fixed[v.Architecture] = v.Name
	}
	pf, err := Lookup("fixed", Config{Fixed: fixed})
	if err != nil {
		t.Fatal(err)
	}
	pi, _ := Lookup("infaas", Config{})
	for _, p := range []Policy{pi, pf} {
		var d Decision
		i := 0
		if n := testing.AllocsPerRun(1000, func() {
			p.Select(s, &reqs[i%len(reqs)], t0, &d)
			i++
		}); n != 0 {
			t.Errorf("%s: Select allocates %v times per call", p.Name(), n)
		}
	}
}
