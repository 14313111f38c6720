package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/selection"
	"github.com/infaas/infaas/workload"
)

// epoch is virtual time 0: a fixed instant, so runs are reproducible.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// request is one query in flight.
type request struct {
	arrival  int64 // virtual ns
	deadline int64 // the worker's deadline; 0: none
	target   float64
	samples  int
	set      int32
	replica  *replica
	variant  int32           // snapshot instance that serves it, for the report
	at       int64           // when it reached the worker
	q        batching.Queued // at and deadline as the worker's batcher reads them
	back     int64           // the way back: ns from the worker's answer to the client
}

// replica is one simulated copy of a variant on a worker: a FIFO queue, the
// worker's batching and admission rules, and the worker's monitor.
type replica struct {
	id      string
	slot    int32
	variant *catalog.Variant // as profiled on its worker's class
	w       *simWorker
	reserve int64
	cores   int
	shapeAt int // the Config.ServiceShape entry its last batch took

	loading  bool
	loadAt   int64 // when the load started
	draining bool
	gone     bool

	queue     []int32 // request indexes, FIFO from head
	head      int
	queued    int // samples
	executing int // samples
	batch     []int32
	wakeGen   uint32  // bumped when a scheduled wake is superseded
	parked    []int32 // requests waiting for the load to finish
	compute   time.Duration

	maxBatch int
	p50, p99 []float64 // ms at batch b (index b), from the class profile
	cost     batching.CostModel
	slowness float64
	lastRun  int64 // virtual ns of the last batch; -1: none
	// slowNow is slow() at virtual time slowAt (-1: not worked out).
	slowAt  int64
	slowNow float64
	eng     *engine
	mon     *health.Monitor
	stats   health.Stats
	flags   health.Health
	live    atomic.Int64
	planned []batching.Queued
	lat     []time.Duration
}

// simWorker is one simulated worker process.
type simWorker struct {
	id       string
	class    catalog.HardwareClass
	index    int // order of joining
	started  int64
	added    bool // started by the cluster autoscaler (removable)
	draining bool
	free     int64
	replicas []*replica
	util     float64
	removed  bool
	slow     []interferenceWindow
}

type interferenceWindow struct {
	from, to int64
	factor   float64
}

// engine is one run's state. Single-threaded: every change happens in
// event order on the virtual clock.
type engine struct {
	cfg   Config
	now   int64
	nowT  time.Time // time(), at virtual time nowAt
	nowAt int64
	end   int64
	rng   *rand.Rand // service times
	mix   *rand.Rand // requirement-set draws: the same queries whatever the policy does
	evq   eventQueue
	reqs  []request
	free  []int32

	arrivals  *workload.Arrivals
	trace     *workload.TraceArrivals
	pickTotal float64
	pickCum   []float64

	policy  selection.Policy
	cat     selection.Catalog
	snap    *selection.Snapshot
	byIdx   []*replica // snapshot replica index → replica
	wByIdx  []*simWorker
	dirty   bool // the replica set changed since the snapshot
	d       selection.Decision
	sreq    selection.Request
	models  *autoscale.Models
	cluster *autoscale.Cluster
	traffic *autoscale.TrafficLog

	workers  []*simWorker
	slots    []*replica
	replicas map[string]*replica
	loads    map[string]*replica // variant@worker → loading replica
	nextID   int
	nextW    int
	starting map[string]int

	variants map[string]*catalog.Variant
	res      *Result
	cur      sample

	removedWorkerCost float64
	// Σ service time and Σ profiled p50 of the batches executed, ms
	// (Result.ComputeOverP50).
	sumCompute, sumP50 float64
	// shapeMean is Config.ServiceShape's mean.
	shapeMean float64

	// Arrivals over the last second, in tenths (for HostCPUPerQuery).
	recent     [10]int
	recentSlot int64
	hostCores  int
}

// Run simulates cfg to the end of its load and returns the result.
func Run(cfg Config) (*Result, error) {
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	e.run()
	return e.finish(), nil
}

func newEngine(cfg Config) (*engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	scfg, err := cfg.Policy.SelectionConfig(cfg.Fixed)
	if err != nil {
		return nil, err
	}
	pol, err := selection.Lookup(cfg.Policy.Selection, scfg)
	if err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, nowAt: -1, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), mix: rand.New(rand.NewPCG(cfg.Seed, 2)), policy: pol,
		replicas: map[string]*replica{}, loads: map[string]*replica{}, starting: map[string]int{},
		variants: map[string]*catalog.Variant{}, traffic: autoscale.NewTrafficLog(10 * time.Second)}
	e.res = &Result{Policy: cfg.Policy.Name, Actions: map[string]int{}, RefusedWhy: map[string]int64{}, Assumptions: cfg.Assumptions}
	e.cur.byName = map[string]int{}
	for _, r := range cfg.ServiceShape {
		e.shapeMean += r / float64(len(cfg.ServiceShape))
	}
	for i := range cfg.Variants {
		e.variants[cfg.Variants[i].Name] = &cfg.Variants[i]
	}
	if cfg.Autoscale {
		m, err := autoscale.NewModels(cfg.Policy.Models(cfg.Models))
		if err != nil {
			return nil, err
		}
		e.models = m
	}
	if cfg.Cluster != nil {
		c, err := autoscale.NewCluster(*cfg.Cluster)
		if err != nil {
			return nil, err
		}
		e.cluster = c
	}
	for _, s := range cfg.Mix {
		e.pickTotal += s.Weight
		e.pickCum = append(e.pickCum, e.pickTotal)
	}
	if cfg.Trace != nil {
		e.trace = workload.NewTraceArrivals(*cfg.Trace)
		e.end = int64(cfg.Trace.Duration())
	} else {
		e.arrivals = workload.NewArrivals(cfg.Schedule, cfg.Arrivals, rand.New(rand.NewPCG(cfg.Seed, 1)))
		e.end = int64(cfg.Schedule.Duration())
	}
	e.cat = selection.Catalog{Architectures: cfg.Architectures, Variants: cfg.Variants, Classes: cfg.Classes}
	for _, c := range cfg.Workers {
		h, _ := catalog.FindClass(cfg.Classes, c)
		e.addWorker(h, false)
	}
	e.hostCores = cfg.HostCores
	if e.hostCores <= 0 {
		for _, w := range e.workers {
			e.hostCores += w.class.Cores
		}
	}
	e.snap, err = selection.NewSnapshot(e.cat, e.state())
	if err != nil {
		return nil, err
	}
	e.index()
	if err := e.provision(); err != nil {
		return nil, err
	}
	e.nextArrival()
	e.evq.push(event{at: 0, kind: evRefresh})
	e.evq.push(event{at: int64(cfg.Every), kind: evStep})
	e.evq.push(event{at: int64(cfg.Sample), kind: evSample})
	return e, nil
}

// maxProvisionWorkers bounds how far GrowToProvision grows a cluster.
const maxProvisionWorkers = 64

// provision loads cfg.Provision's replicas, ready at time 0.
func (e *engine) provision() error {
	names := make([]string, 0, len(e.cfg.Provision))
	for n := range e.cfg.Provision {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for range e.cfg.Provision[n] {
			v, ok := e.variants[n]
			if !ok {
				return fmt.Errorf("sim: provision: unknown variant %q", n)
			}
			var host *simWorker
			for _, w := range e.workers {
				on, ok := v.OnClass(w.class.Name)
				if ok && w.free >= catalog.MemoryNeed(on.Profile, on.FileBytes) && w.coresFree() >= coresOf(on) &&
					(host == nil || len(w.replicas) < len(host.replicas)) {
					host = w
				}
			}
			if host == nil && e.cfg.GrowToProvision && len(e.workers) < maxProvisionWorkers {
				host = e.growFor(v)
			}
			if host == nil {
				return fmt.Errorf("sim: provision: no worker has room for %s", n)
			}
			r := e.newReplica(v, host)
			r.loading = false
		}
	}
	e.dirty = true
	return nil
}

// growFor adds a worker that can host v: of the first worker's class when
// v is profiled there, else of v's reference class.
func (e *engine) growFor(v *catalog.Variant) *simWorker {
	for _, c := range []string{e.workers[0].class.Name, v.Hardware} {
		h, ok := catalog.FindClass(e.cfg.Classes, c)
		if !ok {
			continue
		}
		if on, ok := v.OnClass(c); ok && h.MemoryBytes >= catalog.MemoryNeed(on.Profile, on.FileBytes) && h.Cores >= coresOf(on) {
			return e.addWorker(h, false)
		}
	}
	return nil
}

func coresOf(v catalog.Variant) int {
	if v.Provider == "" || v.Provider == "cpu" {
		return max(v.Threads, 1)
	}
	return 0
}

func (w *simWorker) coresFree() int {
	c := w.class.Cores
	for _, r := range w.replicas {
		c -= r.cores
	}
	return c
}

// time is the virtual now as a time.Time, for the live packages' rules;
// it is worked out once per instant (an event reads it many times).
func (e *engine) time() time.Time {
	if e.nowAt != e.now {
		e.nowAt, e.nowT = e.now, epoch.Add(time.Duration(e.now))
	}
	return e.nowT
}

func (e *engine) run() {
	for {
		ev, ok := e.evq.pop()
		if !ok {
			return
		}
		e.now = ev.at
		switch ev.kind {
		case evArrival:
			e.arrive(ev.ref)
			e.nextArrival()
		case evDeliver:
			e.deliver(ev.ref)
		case evWake:
			if r := e.replicaByGen(ev); r != nil {
				e.plan(r)
			}
		case evBatchDone:
			if r := e.slot(ev.ref); r != nil && !r.gone {
				e.batchDone(r)
			}
		case evLoadDone:
			e.loadDone(ev.ref)
		case evWorkerUp:
			e.workerUp(ev.ref)
		case evRefresh:
			e.refresh()
			if e.now < e.end || e.busy() {
				e.evq.push(event{at: e.now + int64(e.cfg.Refresh), kind: evRefresh})
			}
		case evStep:
			e.step()
			if e.now < e.end {
				e.evq.push(event{at: e.now + int64(e.cfg.Every), kind: evStep})
			}
		case evSample:
			e.sample()
			if e.now < e.end || e.busy() {
				e.evq.push(event{at: e.now + int64(e.cfg.Sample), kind: evSample})
			}
		}
	}
}

// busy reports whether requests are still in flight.
func (e *engine) busy() bool { return len(e.reqs) > len(e.free) }

// slot returns the replica with slot index i. Events address replicas by
// an index into a table so that an event carries no pointer; slots are
// never reused within a run.
func (e *engine) slot(i int32) *replica {
	if i < 0 || int(i) >= len(e.slots) {
		return nil
	}
	return e.slots[i]
}

// replicaByGen is the replica of a wake event, unless the wake is moot.
func (e *engine) replicaByGen(ev event) *replica {
	r := e.slot(ev.ref)
	if r == nil || r.gone || r.wakeGen != ev.gen {
		return nil
	}
	return r
}

// nextArrival schedules the next query.
func (e *engine) nextArrival() {
	var at time.Duration
	var target float64
	var ok bool
	if e.trace != nil {
		var a workload.TraceArrival
		a, ok = e.trace.NextArrival()
		at, target = a.At, a.LatencyMs
	} else {
		at, ok = e.arrivals.Next()
	}
	if !ok {
		return
	}
	set := e.pick()
	s := &e.cfg.Mix[set]
	if target == 0 {
		target = s.LatencyMs
	}
	i := e.alloc()
	e.reqs[i] = request{arrival: int64(at), target: target, samples: s.BatchSize(), set: int32(set), variant: -1}
	e.evq.push(event{at: int64(at), kind: evArrival, ref: i})
}

func (e *engine) pick() int {
	if len(e.pickCum) == 1 {
		return 0
	}
	x := e.mix.Float64() * e.pickTotal
	i, _ := slices.BinarySearch(e.pickCum, x)
	return min(i, len(e.pickCum)-1)
}

func (e *engine) alloc() int32 {
	if n := len(e.free); n > 0 {
		i := e.free[n-1]
		e.free = e.free[:n-1]
		return i
	}
	e.reqs = append(e.reqs, request{})
	return int32(len(e.reqs) - 1)
}

func (e *engine) release(i int32) {
	e.reqs[i] = request{}
	e.free = append(e.free, i)
}

// countArrival notes an arrival for the host's load.
func (e *engine) countArrival() {
	e.advanceRecent()
	e.recent[e.recentSlot%10]++
}

func (e *engine) advanceRecent() {
	slot := e.now / int64(100*time.Millisecond)
	for e.recentSlot < slot {
		e.recentSlot++
		e.recent[e.recentSlot%10] = 0
		if slot-e.recentSlot > 10 {
			e.recent = [10]int{}
			e.recentSlot = slot
		}
	}
}

// hostFactor is how much the processes beside the workers slow a batch
// now (Config.HostCPUPerQuery and HostCPUBase): the kernel shares the
// host's cores fairly, so a batch runs at full speed while the workers'
// busy cores and the other processes' demand fit the host, and at
// cores ÷ demand of it when they do not.
func (e *engine) hostFactor() float64 {
	if (e.cfg.HostCPUPerQuery <= 0 && e.cfg.HostCPUBase <= 0) || e.hostCores <= 0 {
		return 1
	}
	e.advanceRecent()
	n := 0
	for _, c := range e.recent {
		n += c
	}
	if n == 0 {
		return 1
	}
	busy := float64(n)*e.cfg.HostCPUPerQuery.Seconds() + e.cfg.HostCPUBase.Seconds()
	// The cores the host's workers' batches hold now (this one's
	// included, when it runs there); the host is the initial workers'
	// machine.
	workers := 0
	for _, w := range e.workers {
		if w.added {
			continue
		}
		held := 0
		for _, rep := range w.replicas {
			if rep.executing > 0 {
				held += max(rep.cores, 1)
			}
		}
		workers += min(held, w.class.Cores)
	}
	return max(1, (float64(workers)+busy)/float64(e.hostCores))
}
