package autoscale

import (
	"cmp"
	"math"
	"slices"

	"github.com/infaas/infaas/catalog"
)

// instance is a variant on one hardware class: what a replica of it costs,
// needs and sustains there.
type instance struct {
	v        catalog.Variant // OnClass: Hardware and Profile are the class's
	class    catalog.HardwareClass
	costH    float64 // USD per hour per replica
	memory   int64   // catalog.MemoryNeed
	cores    int     // cores a replica occupies (CPU variants)
	batches  []int   // profiled batch sizes up to MaxBatch, and MaxBatch
	qps      []float64
	p99      []float64 // at batches
	p99at1   float64
	maxBatch int
}

// catIndex is the catalog half of a world: classes, variants and their
// instances. A policy keeps it across steps while State.Epoch is unchanged
// and non-zero, so a step over an unchanged catalog indexes nothing.
type catIndex struct {
	epoch      uint64
	classes    map[string]catalog.HardwareClass
	classNames []string // sorted
	variants   map[string]catalog.Variant
	byArch     map[string][]string // architecture → its variant names, sorted
	instCache  map[[2]string]*instance
	archInst   map[string][]*instance
}

func newCatIndex(st *State) *catIndex {
	c := &catIndex{epoch: st.Epoch, classes: map[string]catalog.HardwareClass{}, variants: map[string]catalog.Variant{},
		byArch: map[string][]string{}, instCache: map[[2]string]*instance{}, archInst: map[string][]*instance{}}
	for _, h := range st.Classes {
		c.classes[h.Name] = h
		c.classNames = append(c.classNames, h.Name)
	}
	slices.Sort(c.classNames)
	for _, v := range st.Variants {
		c.variants[v.Name] = v
		c.byArch[v.Architecture] = append(c.byArch[v.Architecture], v.Name)
	}
	for _, names := range c.byArch {
		slices.Sort(names)
	}
	return c
}

// world indexes a State for one step.
type world struct {
	st *State
	*catIndex
	workers map[string]*Worker
}

// newWorld indexes st, reusing prev's catalog index when st.Epoch says it
// still holds (prev may be nil).
func newWorld(st *State, prev *catIndex) *world {
	w := &world{st: st, catIndex: prev, workers: make(map[string]*Worker, len(st.Workers))}
	if prev == nil || st.Epoch == 0 || prev.epoch != st.Epoch {
		w.catIndex = newCatIndex(st)
	}
	for i := range st.Workers {
		w.workers[st.Workers[i].ID] = &st.Workers[i]
	}
	return w
}

// inst returns variant name on class, or nil when the variant is unknown,
// the class is not listed, or the variant has no profile there.
func (c *catIndex) inst(name, class string) *instance {
	key := [2]string{name, class}
	if in, ok := c.instCache[key]; ok {
		return in
	}
	var in *instance
	v, ok := c.variants[name]
	h, hok := c.classes[class]
	if ok && hok {
		if on, ok := v.OnClass(class); ok {
			in = &instance{v: on, class: h, costH: h.CostPerHour(on.Threads), memory: catalog.MemoryNeed(on.Profile, on.FileBytes),
				maxBatch: max(on.MaxBatch, 1), p99at1: on.Profile.P99At(1)}
			if isCPU(on.Provider) {
				in.cores = max(on.Threads, 1)
			}
			for _, b := range on.Profile.Batches() {
				if b >= 1 && b < in.maxBatch {
					in.batches = append(in.batches, b)
				}
			}
			in.batches = append(in.batches, in.maxBatch)
			for _, b := range in.batches {
				in.qps = append(in.qps, on.Profile.ThroughputAt(b))
				in.p99 = append(in.p99, on.Profile.P99At(b))
			}
		}
	}
	c.instCache[key] = in
	return in
}

// instances lists every instance of an architecture's variants, by
// variant name then class name.
func (c *catIndex) instances(arch string) []*instance {
	if out, ok := c.archInst[arch]; ok {
		return out
	}
	var out []*instance
	for _, name := range c.byArch[arch] {
		for _, cl := range c.classNames {
			if in := c.inst(name, cl); in != nil {
				out = append(out, in)
			}
		}
	}
	c.archInst[arch] = out
	return out
}

// capacity is what one replica sustains, in samples per second, for
// traffic with latency target targetMs (0: none): its profiled throughput
// (catalog.Profile.ThroughputAt) at the largest batch whose p99 takes at
// most share of the target — batch 1 when none does — and that batch and
// p99. 0 when unprofiled.
func (in *instance) capacity(targetMs, share float64) (qps float64, batch int, p99 float64) {
	for i, b := range in.batches {
		q, p99b := in.qps[i], in.p99[i]
		if q <= 0 || math.IsNaN(q) || math.IsInf(q, 0) {
			continue
		}
		if batch == 0 || targetMs <= 0 || p99b <= share*targetMs {
			if q > qps || batch == 0 {
				qps, batch, p99 = q, b, p99b
			}
		}
	}
	return qps, batch, p99
}

// meets reports whether the instance can carry traffic t: accurate enough
// and, at batch 1, within its latency share.
func (in *instance) meets(t Traffic, share float64) bool {
	if in.v.Accuracy < t.MinAccuracy {
		return false
	}
	if t.LatencyMs > 0 {
		if p := in.p99at1; p <= 0 || p > share*t.LatencyMs {
			return false
		}
	}
	return true
}

func isCPU(p string) bool { return p == "" || p == "cpu" }

// room tracks each worker's free memory and cores during a step, so that
// the actions of one step never together over-commit a worker.
type room struct {
	ids   []string
	free  map[string]int64
	cores map[string]int
	has   map[string]map[string]bool // worker → variants it hosts
}

func newRoom(w *world) *room {
	r := &room{free: map[string]int64{}, cores: map[string]int{}, has: map[string]map[string]bool{}}
	for _, wk := range w.st.Workers {
		r.ids = append(r.ids, wk.ID)
		r.free[wk.ID] = wk.FreeMemoryBytes
		c := wk.Cores
		if c <= 0 {
			c = w.classes[wk.Class].Cores
		}
		r.cores[wk.ID] = c
		r.has[wk.ID] = map[string]bool{}
	}
	slices.Sort(r.ids)
	for _, rp := range w.st.Replicas {
		wk, ok := w.workers[rp.Worker]
		if !ok || rp.Draining {
			continue
		}
		r.has[rp.Worker][rp.Variant] = true
		if v, ok := w.variants[rp.Variant]; ok && isCPU(v.Provider) && isCPU(w.classes[wk.Class].Provider) {
			r.cores[rp.Worker] -= max(v.Threads, 1)
		}
	}
	return r
}

func (r *room) clone() *room {
	n := &room{ids: r.ids, free: map[string]int64{}, cores: map[string]int{}, has: r.has}
	for k, v := range r.free {
		n.free[k] = v
	}
	for k, v := range r.cores {
		n.cores[k] = v
	}
	return n
}

// place finds workers for count replicas of in, taking their room, or
// returns nil (and takes nothing that matters: call it on a clone) when
// they do not all fit. It prefers workers that do not host the variant
// yet and are not in avoid, then the least utilised, then the most free
// memory, then the first by ID.
func (r *room) place(w *world, in *instance, count int, avoid map[string]bool) []string {
	var out []string
	for range count {
		best := ""
		var bw *Worker
		for _, id := range r.ids {
			wk := w.workers[id]
			if !wk.Healthy || wk.Draining || wk.Class != in.class.Name || r.free[id] < in.memory || r.cores[id] < in.cores {
				continue
			}
			if best == "" || betterHost(r, in, wk, bw, avoid) {
				best, bw = id, wk
			}
		}
		if best == "" {
			return nil
		}
		r.free[best] -= in.memory
		r.cores[best] -= in.cores
		out = append(out, best)
	}
	return out
}

func betterHost(r *room, in *instance, a, b *Worker, avoid map[string]bool) bool {
	key := func(wk *Worker) (int, int) {
		k1 := 0
		if r.has[wk.ID][in.v.Name] {
			k1 = 1
		}
		k2 := 0
		if avoid[wk.ID] {
			k2 = 1
		}
		return k2, k1
	}
	a1, a2 := key(a)
	b1, b2 := key(b)
	return cmp.Or(cmp.Compare(a1, b1), cmp.Compare(a2, b2), cmp.Compare(a.Utilization, b.Utilization),
		cmp.Compare(r.free[b.ID], r.free[a.ID]), cmp.Compare(a.ID, b.ID)) < 0
}
