package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/selection"
)

// arrive is a query reaching the controller: selection decides, exactly
// as the live controller's dispatcher does, and the query travels on.
func (e *engine) arrive(i int32) {
	if e.dirty {
		e.rebuild()
	}
	r := &e.reqs[i]
	s := &e.cfg.Mix[r.set]
	e.res.Sent++
	e.cur.offered++
	e.countArrival()
	e.sreq = selection.Request{Name: s.Model, Batch: r.samples, LatencyMs: r.target, MinAccuracy: s.MinAccuracy,
		MaxCostPer1k: s.MaxCost, Strict: s.Strict}
	now := e.time()
	d := &e.d
	e.policy.Select(e.snap, &e.sreq, now, d)
	e.note(now, d)
	var rep *replica
	switch d.Action {
	case selection.Refuse:
		if d.Load >= 0 {
			e.startLoad(d.Load, d.LoadWorker)
		}
		e.refuse(i, "selection: "+d.Reason.String())
		return
	case selection.ServeAndLoad:
		e.startLoad(d.Load, d.LoadWorker)
		rep = e.byIdx[d.Replica]
	case selection.Serve:
		rep = e.byIdx[d.Replica]
	case selection.LoadAndServe:
		rep = e.startLoad(d.Load, d.LoadWorker)
	}
	if rep == nil || rep.gone {
		e.fail(i)
		return
	}
	// The worker enforces the deadline when the variant can meet it at
	// all; a cold start or a best-effort pick is served as well as it can
	// be (controller.attempt). The controller counts it from when the
	// query reached it, after the way in (set on delivery: the simulated
	// way in is the time before delivery).
	if r.target > 0 && d.Action != selection.LoadAndServe && rep.p99At(r.samples) <= r.target {
		r.deadline = -1
	}
	r.replica, r.variant = rep, d.Variant
	rep.live.Add(int64(r.samples))
	out := e.overhead()
	r.back = out / 2
	e.evq.push(event{at: e.now + out - r.back, kind: evDeliver, ref: i})
}

// note tells the traffic log what the decision served, as the live
// controller does for every query.
func (e *engine) note(now time.Time, d *selection.Decision) {
	if e.models == nil || (d.Variant < 0 && d.Unplaced < 0) {
		return
	}
	var variant, unplaced string
	if d.Variant >= 0 {
		variant = e.snap.Variant(d.Variant).Name
	}
	if d.Unplaced >= 0 {
		unplaced = e.snap.Variant(d.Unplaced).Hardware
	}
	e.traffic.Note(now, variant, e.sreq.Asked(), unplaced)
}

// deliver is a query reaching its replica's worker.
func (e *engine) deliver(i int32) {
	r := &e.reqs[i]
	r.at = e.now
	if r.deadline == -1 {
		r.deadline = e.now + int64(r.target*float64(time.Millisecond))
	}
	r.q = batching.Queued{Arrived: e.time(), Samples: r.samples}
	if r.deadline != 0 {
		r.q.Deadline = epoch.Add(time.Duration(r.deadline))
	}
	rep := r.replica
	switch {
	case rep.gone:
		rep.live.Add(-int64(r.samples))
		e.fail(i)
		return
	case rep.loading:
		// The worker answers "not ready"; the controller waits for the
		// load and sends again (controller.retryWhileLoading).
		rep.parked = append(rep.parked, i)
		return
	}
	e.admit(rep, i)
}

// admit runs the worker's admission control, then queues the request.
func (e *engine) admit(rep *replica, i int32) {
	r := &e.reqs[i]
	if rep.draining {
		rep.live.Add(-int64(r.samples))
		e.refuse(i, "draining")
		return
	}
	if err := batching.Admit(e.time(), r.samples, r.q.Deadline, rep.queued, rep.executing, e.cfg.QueueBound, rep.costNow()); err != nil {
		rep.mon.Refused(health.Asked{})
		rep.live.Add(-int64(r.samples))
		e.refuse(i, "overloaded")
		return
	}
	rep.queue = append(rep.queue, i)
	rep.queued += r.samples
	rep.mon.Admitted(rep.queued, health.Asked{})
	e.plan(rep)
}

// plan is the worker's batcher: run the head of the queue now, or wait
// for more while every request's slack allows.
func (e *engine) plan(rep *replica) {
	for !e.planOnce(rep) {
	}
}

// planOnce is one turn of the batcher. It returns false when it shed the
// whole batch it took, so the batcher must look at the queue again.
func (e *engine) planOnce(rep *replica) bool {
	if rep.executing > 0 || rep.head == len(rep.queue) {
		return true
	}
	q := rep.planned[:0]
	for _, i := range rep.queue[rep.head:min(len(rep.queue), rep.head+rep.maxBatch+1)] {
		q = append(q, e.reqs[i].q)
	}
	rep.planned = q
	p := batching.PlanBatch(e.time(), q, rep.maxBatch, e.cfg.MaxQueueDelay, rep.costNow(), rep.draining)
	if p.N == 0 {
		if p.Wait > 0 {
			rep.wakeGen++
			e.evq.push(event{at: e.now + int64(p.Wait), kind: evWake, ref: rep.slot, gen: rep.wakeGen})
		}
		return true
	}
	// Requests whose deadline passed while they queued are shed, not run
	// (worker.replica.loop).
	now := e.time()
	batch, samples := rep.batch[:0], 0
	for k, i := range rep.queue[rep.head : rep.head+p.N] {
		if batching.Expired(now, q[k]) {
			rep.mon.Refused(health.Asked{})
			rep.live.Add(-int64(e.reqs[i].samples))
			e.refuse(i, "shed: deadline passed in the queue")
			continue
		}
		batch = append(batch, i)
		samples += e.reqs[i].samples
	}
	rep.batch = batch
	rep.head += p.N
	if rep.head == len(rep.queue) {
		rep.queue, rep.head = rep.queue[:0], 0
	}
	rep.queued -= p.Samples
	if len(batch) == 0 {
		if rep.draining && rep.head == len(rep.queue) {
			e.remove(rep)
			return true
		}
		return false
	}
	rep.executing = samples
	rep.compute = e.serviceTime(rep, samples)
	rep.wakeGen++ // a wake planned for this batch is moot
	e.evq.push(event{at: e.now + int64(rep.compute), kind: evBatchDone, ref: rep.slot})
	return true
}

// Service-time model: measured CPU inference times are not log-normal;
// most runs land close to the median and a few percent land in a long
// tail (a preemption, a page fault, a GC of the neighbour). So a batch of
// n takes the profile's p50 at n with a small spread (σ = bodySpread) with
// probability 1 − tailShare, and otherwise a time uniform between the p50
// and p50 + 2 × (p99 − p50), which puts the mixture's p99 at the profile's
// p99 and its median at the profile's p50.
const (
	bodySpread = 0.05
	tailShare  = 0.02
)

// serviceTime draws how long a batch of n takes (see the model above, or
// Config.ServiceShape when given; Noise scales the spread and the tail's
// length, 0 makes every batch take its p50), times the worker's
// interference factor and the host's (Config.HostCPUPerQuery) now, and
// Config.ComputeScale.
func (e *engine) serviceTime(rep *replica, n int) time.Duration {
	n = min(max(n, 1), len(rep.p50)-1)
	ms := rep.p50[n]
	if noise := e.cfg.Noise; noise > 0 {
		switch shape := e.cfg.ServiceShape; {
		case len(shape) > 0:
			if b := e.cfg.ServiceShapeBlock; b > 1 && e.rng.Float64()*b >= 1 {
				rep.shapeAt = (rep.shapeAt + 1) % len(shape)
			} else {
				rep.shapeAt = e.rng.IntN(len(shape))
			}
			r := shape[rep.shapeAt] / e.shapeMean
			ms *= max(1+noise*(r-1), 0.05)
		case e.rng.Float64() < tailShare:
			ms += 2 * e.rng.Float64() * (rep.p99[n] - rep.p50[n]) * noise
		default:
			ms *= math.Exp(bodySpread * noise * e.rng.NormFloat64())
		}
	}
	ms *= rep.w.interference(e.now) * e.hostFactor()
	if k := e.cfg.ComputeScale; k > 0 {
		ms *= k
	}
	e.sumCompute += ms
	e.sumP50 += rep.p50[n]
	return time.Duration(ms * float64(time.Millisecond))
}

// overhead draws a query's time outside the worker (Config.Overhead,
// OverheadP99, OverheadSample), in ns.
func (e *engine) overhead() int64 {
	if n := len(e.cfg.OverheadSample); n > 0 {
		return int64(max(e.cfg.OverheadSample[e.rng.IntN(n)], 0))
	}
	o := float64(e.cfg.Overhead)
	if tail := float64(e.cfg.OverheadP99) - o; tail > 0 && e.cfg.Noise > 0 && e.rng.Float64() < tailShare {
		o += 2 * e.rng.Float64() * tail * e.cfg.Noise
	}
	return int64(o)
}

// batchDone answers a finished batch's requests and plans the next.
func (e *engine) batchDone(rep *replica) {
	n := rep.executing
	lat := rep.lat[:0]
	for _, i := range rep.batch {
		r := &e.reqs[i]
		rep.live.Add(-int64(r.samples))
		lat = append(lat, time.Duration(e.now-r.at))
		e.answer(i, e.now+r.back)
	}
	rep.lat = lat
	rep.mon.Batch(n, rep.compute, lat, false)
	rep.slowness = health.Slowness(rep.slow(), rep.compute, rep.p50At(n))
	rep.lastRun = e.now
	rep.slowAt = -1
	rep.batch = rep.batch[:0]
	rep.executing = 0
	if rep.draining && rep.head == len(rep.queue) {
		e.remove(rep)
		return
	}
	e.plan(rep)
}

// answer records request i as answered at virtual time at.
func (e *engine) answer(i int32, at int64) {
	r := &e.reqs[i]
	d := time.Duration(at - r.arrival)
	late := r.target > 0 && float64(d) > r.target*float64(time.Millisecond)
	if late && e.cfg.Mix[r.set].Strict {
		// Strict means strict: the controller withholds a late answer
		// and the client is told to retry (controller.attempt).
		e.refuse(i, "strict: answered after its target")
		return
	}
	e.res.Answered++
	e.cur.answered++
	e.res.latency.Record(d)
	e.cur.latency.Record(d)
	if late {
		e.res.Late++
		e.cur.late++
	}
	if r.variant >= 0 {
		if int(r.variant) >= len(e.cur.served) {
			e.cur.served = append(e.cur.served, make([]int, int(r.variant)+1-len(e.cur.served))...)
		}
		e.cur.served[r.variant]++
	}
	e.release(i)
}

func (e *engine) refuse(i int32, why string) {
	e.res.Refused++
	e.cur.refused++
	e.res.RefusedWhy[why]++
	e.release(i)
}

func (e *engine) fail(i int32) {
	e.res.Failed++
	e.cur.failed++
	e.release(i)
}

// snapVariantName names instance v of the snapshot the request was
// decided on; instance indexes are stable while the catalog is.
func (e *engine) snapVariantName(v int32) string { return e.snap.Variant(v).Name }

// costNow is the worker's cost model scaled by the replica's slowness
// (worker.replica.costNow).
func (rep *replica) costNow() batching.CostModel {
	c := rep.cost
	c.Throughput /= rep.slow()
	return c
}

// slow is the replica's slowness faded by the time since its last batch,
// as the worker reads it (health.DecayedSlowness). Admission and the
// batcher read it several times at one instant (every call of the cost
// model), so it is worked out once per instant.
func (rep *replica) slow() float64 {
	if rep.lastRun < 0 {
		return max(rep.slowness, 1)
	}
	if now := rep.eng.now; rep.slowAt != now {
		rep.slowAt, rep.slowNow = now, health.DecayedSlowness(rep.slowness, time.Duration(now-rep.lastRun))
	}
	return rep.slowNow
}

func (rep *replica) p99At(b int) float64 {
	if b < len(rep.p99) {
		return rep.p99[b]
	}
	return rep.variant.Profile.P99At(b)
}

func (rep *replica) p50At(b int) float64 {
	if b < len(rep.p50) {
		return rep.p50[b]
	}
	return rep.variant.Profile.P50At(b)
}

// newReplica makes a replica of v on w, loading.
func (e *engine) newReplica(v *catalog.Variant, w *simWorker) *replica {
	on, ok := v.OnClass(w.class.Name)
	if !ok {
		on = *v
	}
	e.nextID++
	rep := &replica{id: fmt.Sprintf("%s#%d", v.Name, e.nextID), slot: int32(len(e.slots)), variant: &on, w: w,
		reserve: catalog.MemoryNeed(on.Profile, on.FileBytes), cores: coresOf(on), loading: true, loadAt: e.now,
		maxBatch: max(on.MaxBatch, 1), slowness: 1, lastRun: -1, slowAt: -1, eng: e}
	if n := len(e.cfg.ServiceShape); n > 0 {
		rep.shapeAt = e.rng.IntN(n) // replicas walk the measured order from different places
	}
	rep.p50 = make([]float64, rep.maxBatch+1)
	rep.p99 = make([]float64, rep.maxBatch+1)
	for b := 1; b <= rep.maxBatch; b++ {
		rep.p50[b], rep.p99[b] = on.Profile.P50At(b), on.Profile.P99At(b)
		if rep.p50[b] <= 0 {
			rep.p50[b] = rep.p99[b]
		}
		rep.p99[b] = max(rep.p99[b], rep.p50[b])
	}
	base := batching.ProfileCost(on.Profile.P99At, on.Profile.ThroughputQPS, rep.maxBatch)
	rep.cost = batching.CostModel{Throughput: base.Throughput, Exec: func(n int) time.Duration {
		return time.Duration(rep.p99At(n) * rep.slow() * float64(time.Millisecond))
	}}
	rep.mon = health.NewMonitor(e.time, e.cfg.MonitorWindow, e.cfg.MonitorBucket)
	w.free -= rep.reserve
	w.replicas = append(w.replicas, rep)
	e.slots = append(e.slots, rep)
	e.replicas[rep.id] = rep
	e.dirty = true
	return rep
}

// startLoad loads snapshot instance inst on snapshot worker wi, or
// returns the load of it already in flight there.
func (e *engine) startLoad(inst, wi int32) *replica {
	if inst < 0 || wi < 0 || int(wi) >= len(e.wByIdx) {
		return nil
	}
	return e.load(e.snap.Variant(inst).Name, e.wByIdx[wi])
}

// load starts loading variant name on w (or returns the load in flight).
func (e *engine) load(name string, w *simWorker) *replica {
	key := name + "@" + w.id
	if rep, ok := e.loads[key]; ok {
		return rep
	}
	v, ok := e.variants[name]
	if !ok || w.removed {
		return nil
	}
	rep := e.newReplica(v, w)
	e.loads[key] = rep
	e.res.Loads++
	loadMs := rep.variant.Profile.LoadMs
	e.evq.push(event{at: e.now + int64(loadMs*float64(time.Millisecond)), kind: evLoadDone, ref: rep.slot})
	return rep
}

// loadDone makes a loading replica ready and sends it the requests that
// waited for it.
func (e *engine) loadDone(slot int32) {
	rep := e.slot(slot)
	if rep == nil {
		return
	}
	delete(e.loads, rep.variant.Name+"@"+rep.w.id)
	if rep.gone {
		return
	}
	rep.loading = false
	e.dirty = true
	parked := rep.parked
	rep.parked = nil
	for _, i := range parked {
		e.admit(rep, i)
	}
	if rep.draining && rep.executing == 0 && rep.head == len(rep.queue) {
		e.remove(rep)
	}
}

// unload drains a replica: it takes nothing new, finishes its queue, and
// is removed.
func (e *engine) unload(rep *replica) {
	if rep.gone || rep.draining {
		return
	}
	rep.draining = true
	e.dirty = true
	if rep.loading {
		return // removed once the load finishes
	}
	for _, i := range rep.parked {
		e.reqs[i].replica.live.Add(-int64(e.reqs[i].samples))
		e.refuse(i, "draining")
	}
	rep.parked = nil
	if rep.executing == 0 && rep.head == len(rep.queue) {
		e.remove(rep)
	}
}

// remove takes a replica off its worker; what it still held fails.
func (e *engine) remove(rep *replica) {
	if rep.gone {
		return
	}
	rep.gone = true
	e.dirty = true
	w := rep.w
	w.free += rep.reserve
	for j, x := range w.replicas {
		if x == rep {
			w.replicas = append(w.replicas[:j], w.replicas[j+1:]...)
			break
		}
	}
	delete(e.replicas, rep.id)
	e.res.replicaSeconds(rep, e.now)
	for _, i := range append(rep.queue[rep.head:], rep.parked...) {
		e.fail(i)
	}
	if rep.executing > 0 {
		for _, i := range rep.batch {
			e.fail(i)
		}
	}
	rep.queue, rep.parked, rep.batch = nil, nil, nil
}
