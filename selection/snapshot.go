package selection

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/infaas/infaas/catalog"
)

// ErrInvalid marks a snapshot input that contradicts itself (a name listed
// twice); a caller bug.
var ErrInvalid = errors.New("invalid snapshot input")

// Catalog is the slow-changing half of a snapshot: what can be served and
// what it costs. The controller rebuilds it when a model is registered or
// deleted.
type Catalog struct {
	// Architectures maps architectures to use cases (Name, Task and Dataset
	// are read; pass ready ones only). A variant whose architecture is not
	// listed can still be requested by its name and its architecture's
	// name, but belongs to no use case.
	Architectures []catalog.Architecture
	// Variants are the runnable variants. Each becomes one instance per
	// hardware class it can run on (see Snapshot): its reference class
	// (Variant.Hardware, Variant.Profile) and every class of
	// Variant.Profiles that Classes lists. Their profiles are kept by
	// reference: do not mutate them after building a snapshot.
	Variants []catalog.Variant
	// Classes are the hardware classes workers are of, with their prices.
	// A profile for a class not listed is ignored. A reference class not
	// listed still makes an instance, of unknown, infinite cost: it fails
	// every cost ceiling and ranks last on cost.
	Classes []catalog.HardwareClass
}

// Worker is one worker as the controller last saw it.
type Worker struct {
	ID string
	// Class is the worker's hardware class. Only instances of this class
	// (Class.Name) are placed on it, and a replica on it is estimated with
	// its variant's profile on this class; Class.Provider must also be the
	// variant's execution provider ("" means "cpu").
	Class catalog.HardwareClass
	// Cores available to replicas; 0 means Class.Cores. A CPU variant
	// needs at least Variant.Threads cores when this is known.
	Cores int
	// MemoryBytes is the capacity; FreeMemoryBytes what is left after the
	// replicas loaded AND those still loading (the controller must count a
	// load it started as soon as it starts it, or selection will place two
	// loads in the same free memory).
	MemoryBytes     int64
	FreeMemoryBytes int64
	// Utilization is the busy fraction of the worker's CPU or device, 0..1.
	Utilization float64
	// Healthy is false for a worker that missed heartbeats or is draining:
	// nothing is loaded on it and its replicas are a last resort.
	Healthy bool
}

// Replica is one loaded (or loading) copy of a variant on a worker.
// WithState maps it to the variant's instance of its worker's class, or,
// when the variant has no profile for that class (or the class is not in
// Catalog.Classes), to its reference instance: a loaded replica is never
// ignored, it is only estimated with the reference profile.
type Replica struct {
	ID      string
	Variant string // variant name
	Worker  string // worker ID
	// Healthy is false when the replica failed; Overloaded and Interfered
	// are the monitor's marks (tail latency or queue depth far above the
	// profile). Selection avoids all three (see Decision).
	Healthy    bool
	Overloaded bool
	Interfered bool
	// Loading is true until the replica can serve; LoadStarted (zero:
	// just now) and the variant's profiled load time estimate how long is
	// left.
	Loading     bool
	LoadStarted time.Time
	// Outstanding work: samples queued or in flight. When only requests
	// are counted, QueuedRequests stands for that many samples.
	QueuedRequests int
	QueuedSamples  int
	// Live, when set, is the dispatcher's own running count of samples it
	// sent to the replica and has not had answered. Selection reads it at
	// decision time (one atomic load) and takes the larger of it and
	// QueuedSamples, so queries between two state refreshes spread over
	// equal replicas instead of all picking the first. nil: QueuedSamples
	// alone (the simulator's replicas, whose state is always current).
	Live *atomic.Int64
	// ThroughputQPS is the observed throughput in samples per second;
	// 0 means the profile's throughput at the variant's max batch.
	ThroughputQPS float64
	// Slowness is how many times slower than its profile the replica has
	// run lately (the worker's observed compute ÷ profiled median). The
	// estimate scales the profile's p99 and, when ThroughputQPS is 0, the
	// profile's drain time by it, so that of two replicas the one a
	// neighbour slows down gets less work even when both are flagged.
	// Below 1 (0: unknown) counts as 1: a replica is never assumed faster
	// than its profile.
	Slowness float64
}

// State is the fast-changing half of a snapshot: workers and replicas.
type State struct {
	Workers  []Worker
	Replicas []Replica
}

// Snapshot is an immutable, pre-indexed view of the catalog and the cluster
// that selection policies read. Build it with NewSnapshot, refresh its state
// with WithState; it is safe for concurrent use by any number of readers.
//
// The candidates selection weighs are instances: a variant on one hardware
// class, with that class's profile (latency per batch, throughput, load
// time, peak memory) and that class's cost. A variant has an instance for
// its reference class and for each other class it was profiled on that
// Catalog.Classes lists. Variant indexes (Decision.Variant, Decision.Load,
// Decision.Unplaced, Snapshot.Variant) are instance indexes; a variant's
// name resolves to all of its instances, as an architecture's name to all
// of its variants'. An instance is placed only on workers of its class.
//
// Indexes (variant instance, replica, worker) are positions in this
// snapshot only.
type Snapshot struct {
	cat *catIndex // shared by snapshots derived with WithState

	workers  []Worker  // sorted by ID
	replicas []Replica // sorted by (instance index, ID)
	rep      []rinfo   // parallel to replicas
	vrep     []span    // per instance: its replicas in rep
	vdyn     []vdyn    // per instance
	skipped  []string
}

// catIndex is the catalog half of a snapshot.
type catIndex struct {
	// variants are the instances (catalog.Variant.OnClass), sorted by
	// name, then class: the reference class first, then by class name.
	variants []catalog.Variant
	vi       []vinfo   // parallel to variants
	classes  []string  // class names of instances, sorted; vinfo.class indexes it
	batches  []int32   // profiled batch sizes, flat, ascending per instance
	p99      []float64 // p99 at batches[i]
	names    map[string]target
	lists    []int32  // candidate lists, flat, each in (cost, index) order
	vnames   []vgroup // per variant name: its instances
	archs    []archInfo
	usecases []ucInfo
}

type span struct{ off, n int32 }

// target is what a name means: -1 where it names nothing of that kind.
// variant indexes catIndex.vnames.
type target struct{ variant, arch, usecase int32 }

// vgroup is one variant name's instances.
type vgroup struct {
	list span  // in lists, in (cost, index) order
	ref  int32 // the instance of the reference class
}

type archInfo struct {
	name    string
	usecase int32
	list    span // its variants' instances in (cost, index) order
}

type ucInfo struct {
	id    string
	archs []int32 // sorted by name
	list  span    // every instance of its architectures in (cost, index) order
}

// vinfo is what the hot path reads about an instance (64 bytes).
type vinfo struct {
	acc      float64
	cost     float64 // USD per 1,000 queries; +Inf when unknown
	loadMs   float64
	thr      float64 // samples/s at max batch; 0 when unknown
	need     int64   // memory to load it, bytes
	prof     span    // into batches and p99
	maxBatch int32
	arch     int32
	class    int32 // into catIndex.classes
}

// rinfo is what the hot path reads about a replica.
type rinfo struct {
	queueMs   float64 // outstanding samples / throughput, as of the state
	msPer     float64 // ms one outstanding sample adds (1000 / throughput); +Inf when unknown
	slow      float64 // Replica.Slowness, at least 1
	live      *atomic.Int64
	loadEndNs int64 // when a loading replica is expected to be ready; 0: unknown start
	variant   int32
	worker    int32
	tier      tier
	loading   bool
}

// vdyn is the per-instance part that depends on the state.
type vdyn struct {
	healthy int32 // replicas of tier usable or degraded (loaded or loading)
	loading int32 // of those, still loading
	best    int32 // worker a new replica would go to; -1 if none fits
}

// NewSnapshot indexes cat and st. Names listed twice are an error; replicas
// naming an unknown variant or worker are skipped and listed by Skipped
// (a cluster changes while its state is collected).
func NewSnapshot(cat Catalog, st State) (*Snapshot, error) {
	ci, err := indexCatalog(cat)
	if err != nil {
		return nil, err
	}
	return (&Snapshot{cat: ci}).WithState(st)
}

// WithState returns a snapshot of the same catalog with a new state. It
// skips the catalog's indexing and sorting, so the controller can refresh
// queue lengths and health often (about 0.3 ms at 1,000 variants, 100
// workers and 500 replicas; see BenchmarkWithState). s is unchanged.
//
// Each replica is mapped to the instance of its variant on its worker's
// class, or to the variant's reference instance when there is none (see
// Replica).
func (s *Snapshot) WithState(st State) (*Snapshot, error) {
	c := s.cat
	n := &Snapshot{cat: c}

	n.workers = slices.Clone(st.Workers)
	slices.SortFunc(n.workers, func(a, b Worker) int { return cmp.Compare(a.ID, b.ID) })
	widx := make(map[string]int32, len(n.workers))
	wclass := make([]int32, len(n.workers)) // into c.classes; -1: no instance is of its class
	for i, w := range n.workers {
		if i > 0 && n.workers[i-1].ID == w.ID {
			return nil, fmt.Errorf("%w: worker %s is listed twice", ErrInvalid, w.ID)
		}
		widx[w.ID] = int32(i)
		wclass[i] = c.classIndex(w.Class.Name)
	}

	type rep struct {
		v, w int32
		r    Replica
	}
	reps := make([]rep, 0, len(st.Replicas))
	for _, r := range st.Replicas {
		t, ok := c.names[r.Variant]
		if !ok || t.variant < 0 {
			n.skipped = append(n.skipped, fmt.Sprintf("replica %s: unknown variant %s", r.ID, r.Variant))
			continue
		}
		w, ok := widx[r.Worker]
		if !ok {
			n.skipped = append(n.skipped, fmt.Sprintf("replica %s: unknown worker %s", r.ID, r.Worker))
			continue
		}
		reps = append(reps, rep{c.instanceOn(t.variant, wclass[w]), w, r})
	}
	slices.SortFunc(reps, func(a, b rep) int {
		return cmp.Or(cmp.Compare(a.v, b.v), cmp.Compare(a.r.ID, b.r.ID))
	})
	n.replicas = make([]Replica, len(reps))
	n.rep = make([]rinfo, len(reps))
	n.vrep = make([]span, len(c.variants))
	n.vdyn = make([]vdyn, len(c.variants))
	seen := make(map[string]bool, len(reps))
	for i, x := range reps {
		if seen[x.r.ID] {
			return nil, fmt.Errorf("%w: replica %s is listed twice", ErrInvalid, x.r.ID)
		}
		seen[x.r.ID] = true
		n.replicas[i] = x.r
		n.rep[i] = c.replicaInfo(x.v, x.w, &x.r, &n.workers[x.w])
		sp := &n.vrep[x.v]
		if sp.n == 0 {
			sp.off = int32(i)
		}
		sp.n++
		if ri := n.rep[i]; ri.tier <= tierDegraded {
			n.vdyn[x.v].healthy++
			if ri.loading {
				n.vdyn[x.v].loading++
			}
		}
	}
	n.place(wclass)
	return n, nil
}

// classIndex is the index of class name in c.classes, or -1.
func (c *catIndex) classIndex(name string) int32 {
	if i, ok := slices.BinarySearch(c.classes, name); ok {
		return int32(i)
	}
	return -1
}

// instanceOn is variant name g's instance of class k (an index into
// c.classes, -1 for none), or its reference instance if it has none there.
func (c *catIndex) instanceOn(g int32, k int32) int32 {
	vg := &c.vnames[g]
	for _, v := range c.lists[vg.list.off : vg.list.off+vg.list.n] {
		if c.vi[v].class == k {
			return v
		}
	}
	return vg.ref
}

func (c *catIndex) replicaInfo(v, w int32, r *Replica, wk *Worker) rinfo {
	vi := &c.vi[v]
	ri := rinfo{variant: v, worker: w, loading: r.Loading, tier: tierOf(r, wk)}
	if r.Loading && !r.LoadStarted.IsZero() {
		ri.loadEndNs = r.LoadStarted.UnixNano() + int64(vi.loadMs*1e6)
	}
	samples := max(r.QueuedSamples, r.QueuedRequests)
	ri.slow = max(r.Slowness, 1)
	thr := r.ThroughputQPS
	if thr <= 0 {
		thr = vi.thr / ri.slow
	}
	ri.live = r.Live
	ri.msPer = math.Inf(1)
	if thr > 0 {
		ri.msPer = 1000 / thr
	}
	if samples > 0 {
		ri.queueMs = float64(samples) * ri.msPer
	}
	return ri
}

// place records where a new replica of each instance would go: among the
// workers of its class that can host it (see hostCheck), the least
// utilised, then the one with the most free memory, then the first by ID.
// Least utilised rather than bin packing, as INFaaS did: a load started by
// selection is on its way to serve latency-bound requests, and a busy
// worker adds interference; consolidation is the cluster autoscaler's job
// when it scales in. Workers are sorted once and bucketed by class, so an
// instance usually stops at the first worker of its class. wclass is each
// worker's class index.
func (s *Snapshot) place(wclass []int32) {
	order := make([]int32, len(s.workers))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		wa, wb := &s.workers[a], &s.workers[b]
		return cmp.Or(cmp.Compare(wa.Utilization, wb.Utilization), cmp.Compare(wb.FreeMemoryBytes, wa.FreeMemoryBytes))
	})
	byClass := make([][]int32, len(s.cat.classes))
	for _, w := range order {
		if k := wclass[w]; k >= 0 {
			byClass[k] = append(byClass[k], w)
		}
	}
	for v := range s.vdyn {
		s.vdyn[v].best = -1
		for _, w := range byClass[s.cat.vi[v].class] {
			if s.cat.hostCheck(int32(v), &s.workers[w]) == hostOK {
				s.vdyn[v].best = w
				break
			}
		}
	}
}

func indexCatalog(cat Catalog) (*catIndex, error) {
	c := &catIndex{names: make(map[string]target)}
	get := func(name string) target {
		if t, ok := c.names[name]; ok {
			return t
		}
		return target{-1, -1, -1}
	}

	classes := make(map[string]catalog.HardwareClass, len(cat.Classes))
	for _, h := range cat.Classes {
		if _, dup := classes[h.Name]; dup {
			return nil, fmt.Errorf("%w: hardware class %s is listed twice", ErrInvalid, h.Name)
		}
		classes[h.Name] = h
		c.classes = append(c.classes, h.Name)
	}

	// Use cases and architectures, in name order.
	archs := slices.Clone(cat.Architectures)
	slices.SortFunc(archs, func(a, b catalog.Architecture) int { return cmp.Compare(a.Name, b.Name) })
	ucIDs := make([]string, 0)
	for i, a := range archs {
		if i > 0 && archs[i-1].Name == a.Name {
			return nil, fmt.Errorf("%w: architecture %s is listed twice", ErrInvalid, a.Name)
		}
		ucIDs = append(ucIDs, a.UseCaseID())
	}
	slices.Sort(ucIDs)
	ucIDs = slices.Compact(ucIDs)
	for i, id := range ucIDs {
		c.usecases = append(c.usecases, ucInfo{id: id})
		t := get(id)
		t.usecase = int32(i)
		c.names[id] = t
	}
	addArch := func(name string, uc int32) int32 {
		i := int32(len(c.archs))
		c.archs = append(c.archs, archInfo{name: name, usecase: uc})
		t := get(name)
		t.arch = i
		c.names[name] = t
		return i
	}
	for _, a := range archs {
		uc, _ := slices.BinarySearch(ucIDs, a.UseCaseID())
		addArch(a.Name, int32(uc))
	}

	// Variants in name order, each expanded into its instances: the
	// reference class first, then the listed classes it has a profile
	// for, by name.
	vs := slices.Clone(cat.Variants)
	slices.SortFunc(vs, func(a, b catalog.Variant) int { return cmp.Compare(a.Name, b.Name) })
	kept := make([]string, 0, len(vs)) // instance classes, flat
	ends := make([]int, len(vs))       // variant i's are kept[ends[i-1]:ends[i]]
	for i := range vs {
		v := &vs[i]
		if i > 0 && vs[i-1].Name == v.Name {
			return nil, fmt.Errorf("%w: variant %s is listed twice", ErrInvalid, v.Name)
		}
		kept = append(kept, v.Hardware) // the reference class, listed or not
		from := len(kept)
		for k := range v.Profiles {
			if _, ok := classes[k]; ok && k != v.Hardware {
				kept = append(kept, k)
			}
		}
		slices.Sort(kept[from:])
		ends[i] = len(kept)
		if _, ok := classes[v.Hardware]; !ok {
			c.classes = append(c.classes, v.Hardware)
		}
	}
	slices.Sort(c.classes)
	c.classes = slices.Compact(c.classes)

	n := len(kept)
	c.variants = make([]catalog.Variant, 0, n)
	c.vi = make([]vinfo, 0, n)
	c.batches = make([]int32, 0, 4*n)
	c.p99 = make([]float64, 0, 4*n)
	c.lists = make([]int32, 0, 3*n) // per variant, per architecture, per use case
	c.vnames = make([]vgroup, 0, len(vs))
	byArch := make([][]int32, len(c.archs))
	order := func(list []int32) span {
		sp := span{off: int32(len(c.lists)), n: int32(len(list))}
		c.lists = append(c.lists, list...)
		l := c.lists[sp.off:]
		slices.SortFunc(l, func(a, b int32) int { return cmp.Or(cmp.Compare(c.vi[a].cost, c.vi[b].cost), cmp.Compare(a, b)) })
		return sp
	}
	var inst []int32
	for i := range vs {
		v := &vs[i]
		t := get(v.Name)
		t.variant = int32(len(c.vnames))
		c.names[v.Name] = t
		a := get(v.Architecture).arch
		if a < 0 { // architecture not listed: reachable by name, no use case
			a = addArch(v.Architecture, -1)
			byArch = append(byArch, nil)
		}
		lo := 0
		if i > 0 {
			lo = ends[i-1]
		}
		inst = inst[:0]
		for _, k := range kept[lo:ends[i]] {
			on, _ := v.OnClass(k)
			j := int32(len(c.variants))
			c.variants = append(c.variants, on)
			c.vi = append(c.vi, c.variantInfo(j, a, classes))
			inst = append(inst, j)
		}
		byArch[a] = append(byArch[a], inst...)
		c.vnames = append(c.vnames, vgroup{list: order(inst), ref: inst[0]})
	}

	// Candidate lists in (cost, index) order.
	for a := range c.archs {
		c.archs[a].list = order(byArch[a])
		if uc := c.archs[a].usecase; uc >= 0 {
			c.usecases[uc].archs = append(c.usecases[uc].archs, int32(a))
		}
	}
	for u := range c.usecases {
		var all []int32
		for _, a := range c.usecases[u].archs {
			all = append(all, byArch[a]...)
		}
		c.usecases[u].list = order(all)
	}
	return c, nil
}

// variantInfo indexes instance v, whose Hardware and Profile are already
// its class's.
func (c *catIndex) variantInfo(v, arch int32, classes map[string]catalog.HardwareClass) vinfo {
	cv := &c.variants[v]
	vi := vinfo{acc: cv.Accuracy, loadMs: cv.Profile.LoadMs, maxBatch: int32(cv.MaxBatch), arch: arch,
		class: c.classIndex(cv.Hardware)}
	vi.prof.off = int32(len(c.batches))
	for _, b := range cv.Profile.Batches() {
		if b <= 0 {
			continue
		}
		c.batches = append(c.batches, int32(b))
		c.p99 = append(c.p99, cv.Profile.LatencyMs[b].P99)
		vi.prof.n++
	}
	vi.thr = cv.Profile.ThroughputQPS
	if vi.thr <= 0 && cv.MaxBatch > 0 {
		if p := c.p99At(vi.prof, cv.MaxBatch); p > 0 && !math.IsInf(p, 1) {
			vi.thr = float64(cv.MaxBatch) * 1000 / p
		}
	}
	vi.cost = math.Inf(1)
	if h, ok := classes[cv.Hardware]; ok && vi.thr > 0 {
		vi.cost = h.CostPerQuery(cv.Threads, vi.thr) * 1000
	}
	vi.need = catalog.MemoryNeed(cv.Profile, cv.FileBytes)
	return vi
}
