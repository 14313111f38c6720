package selection

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/infaas/infaas/catalog"
)

// genClasses are the hardware classes of generated worlds: three CPU
// classes (genClasses[:3]) and two GPU classes.
var genClasses = []catalog.HardwareClass{
	{Name: "cpu-2", Provider: "cpu", Cores: 2, MemoryBytes: 4 * gib64, PricePerHour: 0.096},
	{Name: "cpu-8", Provider: "cpu", Cores: 8, MemoryBytes: 32 * gib64, PricePerHour: 0.384},
	{Name: "cpu-32", Provider: "cpu", Cores: 32, MemoryBytes: 128 * gib64, PricePerHour: 1.536},
	{Name: "gpu", Provider: "cuda", Cores: 8, MemoryBytes: 16 * gib64, PricePerHour: 3.06},
	{Name: "gpu-t4", Provider: "cuda", Cores: 4, MemoryBytes: 16 * gib64, PricePerHour: 0.526},
}

// Classes of edgy worlds that Catalog.Classes does not list: workers may
// be of them, variants profiled on them or (unknownClass) referenced to
// them.
var (
	unlistedClass = catalog.HardwareClass{Name: "cpu-unlisted", Provider: "cpu", Cores: 4, MemoryBytes: 16 * gib64, PricePerHour: 0.192}
	unknownClass  = catalog.HardwareClass{Name: "unknown-class", Provider: "cpu", Cores: 8, MemoryBytes: 32 * gib64, PricePerHour: 0.384}
)

// classProfile is p as measured on another class: latency scaled by f,
// throughput by 1/f, load time and memory a little different.
func classProfile(rng *rand.Rand, p catalog.Profile, f float64) catalog.Profile {
	q := p
	q.LatencyMs = make(map[int]catalog.Latency, len(p.LatencyMs))
	for b, l := range p.LatencyMs {
		q.LatencyMs[b] = catalog.Latency{P50: l.P50 * f, P99: l.P99 * f, Samples: l.Samples}
	}
	q.ThroughputQPS = p.ThroughputQPS / f
	q.LoadMs = p.LoadMs * (0.5 + 1.5*rng.Float64())
	q.PeakMemoryBytes = int64(float64(p.PeakMemoryBytes) * (0.8 + 0.4*rng.Float64()))
	return q
}

func logUniform(rng *rand.Rand, lo, hi float64) float64 {
	return lo * math.Exp(rng.Float64()*math.Log(hi/lo))
}

// world is a generated catalog and state with the names requests use.
type world struct {
	cat      Catalog
	st       State
	usecases []string
}

// genWorld builds a realistic random world: nv variants spread over nv/10
// architectures (at least one) in up to four use cases, each profiled on
// its reference class and, half the time, on each other class of its
// provider (where it has cores enough for its threads), slower or faster;
// nw workers of five hardware classes; and min(nv/2, 10·nw) replicas on
// random workers of the right provider, mostly of a class the variant is
// profiled on. edgy adds the rare cases: unprofiled variants, unknown and
// unlisted hardware classes (for variants, profiles and workers), a
// profile for the reference class in Profiles, unhealthy workers, full
// workers, CPU variants on a GPU worker, empty architectures.
func genWorld(rng *rand.Rand, nv, nw int, edgy bool) world {
	var w world
	na := max(1, nv/10)
	nu := min(4, na)
	for u := range nu {
		w.usecases = append(w.usecases, catalog.UseCaseID("classification", fmt.Sprintf("ds%d", u)))
	}
	type archGen struct {
		name    string
		acc, p1 float64
	}
	archs := make([]archGen, na)
	for a := range archs {
		archs[a] = archGen{name: fmt.Sprintf("arch-%03d", a), acc: 60 + 39*rng.Float64(), p1: logUniform(rng, 0.02, 40)}
		w.cat.Architectures = append(w.cat.Architectures, catalog.Architecture{
			Name: archs[a].name, Task: "classification", Dataset: fmt.Sprintf("ds%d", a%nu), State: catalog.StateReady})
	}
	if edgy && rng.IntN(4) == 0 { // an architecture with no variants
		w.cat.Architectures = append(w.cat.Architectures, catalog.Architecture{Name: "arch-empty", Task: "classification", Dataset: "ds0"})
	}
	w.cat.Classes = genClasses
	batchSizes := []int{1, 2, 4, 8, 16, 32, 64}
	for i := range nv {
		a := archs[i%na]
		threads := []int{1, 2, 4, 8}[rng.IntN(4)]
		mb := batchSizes[rng.IntN(len(batchSizes))]
		gpu := rng.IntN(7) == 0
		hw := genClasses[rng.IntN(3)]
		same := genClasses[:3]
		prec := "fp32"
		acc := a.acc
		p1 := a.p1 / math.Pow(float64(threads), 0.7)
		slope := 0.6
		if rng.IntN(2) == 0 {
			prec, acc, p1 = "int8", acc-1.5*rng.Float64(), p1*0.6
		}
		if gpu {
			hw, threads, p1, slope = genClasses[3+rng.IntN(2)], 1, 0.3+a.p1*0.1, 0.05
			same = genClasses[3:]
		}
		prof := catalog.Profile{LoadMs: logUniform(rng, 20, 3000), PeakMemoryBytes: int64(logUniform(rng, 16<<20, 2<<30)),
			LatencyMs: map[int]catalog.Latency{}}
		for _, b := range batchSizes {
			if b > mb || (b != 1 && b != mb && rng.IntN(2) == 0) {
				continue
			}
			p99 := p1 * (1 + slope*float64(b-1)) * (1 + 0.2*rng.Float64())
			prof.LatencyMs[b] = catalog.Latency{P50: 0.7 * p99, P99: p99, Samples: 100}
		}
		prof.ThroughputQPS = float64(mb) * 1000 / prof.LatencyMs[mb].P50
		var profiles map[string]catalog.Profile
		for _, h := range same {
			if h.Name == hw.Name || h.Cores < threads || rng.IntN(2) == 0 {
				continue
			}
			if profiles == nil {
				profiles = map[string]catalog.Profile{}
			}
			profiles[h.Name] = classProfile(rng, prof, logUniform(rng, 0.3, 3))
		}
		v := catalog.Variant{
			Name: fmt.Sprintf("%s.v%04d.%s.t%d.b%d.%s", a.name, i, prec, threads, mb, hw.Provider), Architecture: a.name,
			Precision: prec, OptLevel: "all", Provider: hw.Provider, Hardware: hw.Name, Threads: threads, MaxBatch: mb,
			Accuracy: math.Round(acc*100) / 100, AccuracySource: catalog.AccuracyMeasured, Profile: prof,
			Profiles: profiles,
		}
		if edgy {
			switch rng.IntN(30) {
			case 0:
				v.Profile.LatencyMs, v.Profile.ThroughputQPS = nil, 0
			case 1:
				v.Hardware = "unknown-class"
			case 2:
				v.Profile.ThroughputQPS = 0
			case 3:
				v.Profile.PeakMemoryBytes = 0
			case 4, 5, 6, 7, 8: // equal costs, to exercise ties
				v.Provider, v.Hardware, v.Threads, v.Profile.ThroughputQPS = "cpu", "cpu-8", 2, 1000
				v.Profiles = nil
			case 9, 10: // a profile on a class the catalog does not list: ignored
				v.Profiles = map[string]catalog.Profile{unlistedClass.Name: classProfile(rng, prof, 0.5)}
			case 11: // the reference class in Profiles too: Profile wins
				v.Profiles = map[string]catalog.Profile{v.Hardware: classProfile(rng, prof, 0.1)}
			case 12: // a profile without latencies on another class
				if v.Provider == "cpu" && v.Hardware != "cpu-32" {
					p := classProfile(rng, prof, 1)
					p.LatencyMs, p.ThroughputQPS = nil, 0
					v.Profiles = map[string]catalog.Profile{"cpu-32": p}
				}
			}
		}
		w.cat.Variants = append(w.cat.Variants, v)
	}

	for j := range nw {
		hw := genClasses[rng.IntN(len(genClasses))]
		if edgy && rng.IntN(8) == 0 {
			hw = []catalog.HardwareClass{unlistedClass, unknownClass}[rng.IntN(2)]
		}
		wk := Worker{ID: fmt.Sprintf("w%03d", j), Class: hw, MemoryBytes: hw.MemoryBytes,
			FreeMemoryBytes: int64(rng.Float64() * float64(hw.MemoryBytes)), Utilization: rng.Float64(), Healthy: rng.IntN(20) != 0}
		if edgy {
			switch rng.IntN(6) {
			case 0:
				wk.Healthy = false
			case 1:
				wk.FreeMemoryBytes = 0
			case 2:
				wk.Utilization = 0.5 // ties
			}
		}
		w.st.Workers = append(w.st.Workers, wk)
	}
	nr := min(nv/2, 10*nw)
	if edgy && nw > 0 {
		nr = rng.IntN(2*nv + 1)
	}
	for k := range nr {
		vi := rng.IntN(nv)
		v := &w.cat.Variants[vi]
		// Mostly a worker of a class the variant is profiled on; else one
		// of its provider (estimated with the reference profile).
		fits := func(wk *Worker) bool {
			if provider(wk.Class.Provider) != provider(v.Provider) {
				return false
			}
			_, ok := v.ProfileOn(wk.Class.Name)
			return ok || rng.IntN(5) == 0
		}
		wj := rng.IntN(nw)
		for try := 0; try < 12 && !fits(&w.st.Workers[wj]); try++ {
			wj = rng.IntN(nw)
		}
		r := Replica{ID: fmt.Sprintf("r%04d", k), Variant: v.Name, Worker: w.st.Workers[wj].ID, Healthy: rng.IntN(20) != 0,
			Overloaded: rng.IntN(20) == 0, Interfered: rng.IntN(30) == 0}
		if rng.IntN(12) == 0 {
			r.Loading = true
			if rng.IntN(4) != 0 {
				r.LoadStarted = t0.Add(-time.Duration(rng.Float64() * 1.5 * v.Profile.LoadMs * 1e6))
			}
		}
		if rng.IntN(3) != 0 {
			r.QueuedSamples = rng.IntN(4*v.MaxBatch + 1)
		} else {
			r.QueuedRequests = rng.IntN(8)
		}
		if rng.IntN(2) == 0 {
			r.ThroughputQPS = v.Profile.ThroughputQPS * (0.5 + 0.7*rng.Float64())
		}
		if edgy && rng.IntN(4) == 0 { // equal estimates, to exercise ties
			r.QueuedSamples, r.QueuedRequests = 0, 0
		}
		w.st.Replicas = append(w.st.Replicas, r)
	}
	return w
}

// genRequest draws a request against w: mostly use cases, also
// architectures, variants, unknown names and mismatched kinds.
func genRequest(rng *rand.Rand, w *world) Request {
	var r Request
	switch k := rng.IntN(20); {
	case k < 10:
		r.Kind, r.Name = KindUseCase, w.usecases[rng.IntN(len(w.usecases))]
	case k < 15:
		r.Kind, r.Name = KindArchitecture, w.cat.Architectures[rng.IntN(len(w.cat.Architectures))].Name
	case k < 18 && len(w.cat.Variants) > 0:
		r.Kind, r.Name = KindVariant, w.cat.Variants[rng.IntN(len(w.cat.Variants))].Name
	case k < 19:
		r.Name = "no-such-model"
	default:
		r.Kind, r.Name = KindVariant, w.usecases[0]
	}
	if rng.IntN(3) == 0 {
		r.Kind = KindAuto
	}
	r.Batch = 1
	if rng.IntN(3) == 0 {
		r.Batch = rng.IntN(80)
	}
	if rng.IntN(5) != 0 {
		r.LatencyMs = logUniform(rng, 0.02, 1000)
	}
	if rng.IntN(5) < 3 {
		r.MinAccuracy = 55 + 45*rng.Float64()
	}
	if rng.IntN(10) < 3 {
		r.MaxCostPer1k = logUniform(rng, 1e-7, 1e-3)
	}
	r.Strict = rng.IntN(4) == 0
	return r
}

// useCaseRequests draws n fully model-less requests for benchmarks.
func useCaseRequests(rng *rand.Rand, w *world, n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Kind: KindUseCase, Name: w.usecases[i%len(w.usecases)], Batch: 1 + rng.IntN(8)/6*rng.IntN(8),
			LatencyMs: logUniform(rng, 0.02, 200)}
		if rng.IntN(2) == 0 {
			reqs[i].MinAccuracy = 60 + 39*rng.Float64()
		}
		if rng.IntN(4) == 0 {
			reqs[i].MaxCostPer1k = logUniform(rng, 1e-6, 1e-4)
		}
	}
	return reqs
}
