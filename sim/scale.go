package sim

import (
	"fmt"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/selection"
)

// addWorker brings a worker of class h into the cluster now.
func (e *engine) addWorker(h catalog.HardwareClass, added bool) *simWorker {
	e.nextW++
	w := &simWorker{id: fmt.Sprintf("sim-%d-%s", e.nextW, h.Name), class: h, index: len(e.workers), started: e.now,
		added: added, free: h.MemoryBytes}
	for _, in := range e.cfg.Interference {
		if in.Worker == w.index {
			w.slow = append(w.slow, interferenceWindow{from: int64(in.At), to: int64(in.At + in.For), factor: in.Factor})
		}
	}
	e.workers = append(e.workers, w)
	e.dirty = true
	return w
}

// interference is how many times slower w's replicas run at t.
func (w *simWorker) interference(t int64) float64 {
	f := 1.0
	for _, s := range w.slow {
		if t >= s.from && t < s.to {
			f *= s.factor
		}
	}
	return f
}

// workerUp is a worker the cluster autoscaler asked for joining.
func (e *engine) workerUp(i int32) {
	h := e.cfg.Classes[i]
	e.starting[h.Name]--
	e.addWorker(h, true)
}

// refresh is the workers' reports reaching the controller: each replica's
// window statistics and health flags (the live monitor's code), each
// worker's utilisation, folded into the selection snapshot.
func (e *engine) refresh() {
	for _, w := range e.workers {
		w.util = 0
		for _, rep := range w.replicas {
			rep.stats = rep.mon.Snapshot(rep.queued, rep.executing)
			rep.stats.Slowness = rep.slow()
			if !rep.loading {
				old := rep.flags
				rep.flags = health.Assess(rep.stats, rep.variant.Profile, rep.maxBatch, e.cfg.Thresholds)
				e.watch(rep, old)
			}
			w.util += health.Busy(rep.stats, rep.variant.Profile.ThroughputQPS, rep.variant.Threads, w.class.Cores)
		}
		w.util = min(w.util, 1)
	}
	e.rebuild()
}

// watch records a change of a replica's flags, as the live controller's
// monitor events do.
func (e *engine) watch(rep *replica, old health.Health) {
	h := rep.flags
	if h.Interfered == old.Interfered && h.Overloaded == old.Overloaded {
		return
	}
	ev := Event{T: float64(e.now) / float64(time.Second), Source: "monitor", Variant: rep.variant.Name, Worker: rep.w.id}
	switch {
	case h.Interfered && !old.Interfered:
		ev.Action, ev.Reason = "interfered", "interference"
	case h.Overloaded && !old.Overloaded:
		ev.Action, ev.Reason = "overloaded", "overload"
	case !h.Interfered && !h.Overloaded:
		ev.Action, ev.Reason = "cleared", "healthy"
	default:
		return
	}
	if len(h.Reasons) > 0 {
		ev.Message = h.Reasons[0]
	}
	e.res.Events = append(e.res.Events, ev)
}

// rebuild folds the current state into the selection snapshot.
func (e *engine) rebuild() {
	snap, err := e.snap.WithState(e.state())
	if err != nil {
		panic(fmt.Sprintf("sim: snapshot state: %v", err)) // IDs are unique by construction
	}
	e.snap = snap
	e.index()
	e.dirty = false
}

// state is selection's view of the cluster.
func (e *engine) state() selection.State {
	var st selection.State
	for _, w := range e.workers {
		st.Workers = append(st.Workers, selection.Worker{ID: w.id, Class: w.class, Cores: w.class.Cores, MemoryBytes: w.class.MemoryBytes,
			FreeMemoryBytes: max(w.free, 0), Utilization: w.util, Healthy: !w.draining})
		for _, rep := range w.replicas {
			if rep.draining {
				continue
			}
			st.Replicas = append(st.Replicas, selection.Replica{ID: rep.id, Variant: rep.variant.Name, Worker: w.id, Healthy: true,
				Overloaded: rep.flags.Overloaded, Interfered: rep.flags.Interfered, Loading: rep.loading,
				LoadStarted: epoch.Add(time.Duration(rep.loadAt)), QueuedSamples: rep.stats.Outstanding(), Live: &rep.live,
				Slowness: rep.slow()})
		}
	}
	return st
}

// index maps the snapshot's replica and worker indexes to the engine's.
func (e *engine) index() {
	e.byIdx = e.byIdx[:0]
	for i := range e.snap.NumReplicas() {
		e.byIdx = append(e.byIdx, e.replicas[e.snap.Replica(int32(i)).ID])
	}
	e.wByIdx = e.wByIdx[:0]
	for i := range e.snap.NumWorkers() {
		id := e.snap.Worker(int32(i)).ID
		for _, w := range e.workers {
			if w.id == id {
				e.wByIdx = append(e.wByIdx, w)
				break
			}
		}
	}
}

// step runs the model and cluster autoscalers on the state the live
// controller would build (controller.autoscaleState) and carries out
// their actions.
func (e *engine) step() {
	if e.models == nil && e.cluster == nil {
		return
	}
	now := e.time()
	st := autoscale.State{Classes: e.cfg.Classes, Variants: e.cfg.Variants, Epoch: 1, Starting: map[string]int{}}
	for c, n := range e.starting {
		if n > 0 {
			st.Starting[c] = n
		}
	}
	st.Traffic, st.Unplaced = e.traffic.Snapshot(now)
	for _, w := range e.workers {
		for _, rep := range w.replicas {
			st.Replicas = append(st.Replicas, autoscale.Replica{ID: rep.id, Worker: w.id, Variant: rep.variant.Name,
				Loading: rep.loading, Draining: rep.draining, Interfered: rep.flags.Interfered, Overloaded: rep.flags.Overloaded,
				Demand: health.Demand(rep.stats), Outstanding: rep.stats.Outstanding(), Slowness: rep.slow()})
		}
		aw := autoscale.Worker{ID: w.id, Class: w.class.Name, Cores: w.class.Cores, MemoryBytes: w.class.MemoryBytes,
			FreeMemoryBytes: max(w.free, 0), Utilization: w.util, Healthy: true, Draining: w.draining, Removable: w.added}
		if w.added {
			aw.Started = epoch.Add(time.Duration(w.started))
		}
		st.Workers = append(st.Workers, aw)
	}
	var shortages []autoscale.Shortage
	if e.models != nil {
		res := e.models.Step(now, st)
		shortages = res.Shortages
		for _, a := range res.Actions {
			e.do("model-autoscaler", a)
		}
	}
	if e.cluster != nil {
		for _, a := range e.cluster.Step(now, st, shortages) {
			e.do("cluster-autoscaler", a)
		}
	}
}

// do carries out one action as the live controller does (controller.do).
func (e *engine) do(source string, a autoscale.Action) {
	e.res.Actions[string(a.Kind)]++
	e.res.Events = append(e.res.Events, Event{T: float64(e.now) / float64(time.Second), Source: source, Action: string(a.Kind),
		Variant: a.Variant, From: a.From, Worker: a.Worker, Class: a.Class, Reason: a.Reason, Message: a.Message})
	switch a.Kind {
	case autoscale.Replicate, autoscale.Switch, autoscale.Downgrade:
		if w := e.worker(a.Worker); w != nil {
			e.load(a.Variant, w)
		}
	case autoscale.Unload:
		if rep, ok := e.replicas[a.Replica]; ok {
			e.unload(rep)
		}
	case autoscale.AddWorker:
		for i, h := range e.cfg.Classes {
			if h.Name == a.Class {
				e.starting[h.Name]++
				e.evq.push(event{at: e.now + int64(e.cfg.WorkerStart), kind: evWorkerUp, ref: int32(i)})
				break
			}
		}
	case autoscale.DrainWorker:
		if w := e.worker(a.Worker); w != nil {
			w.draining = true
			for _, rep := range append([]*replica(nil), w.replicas...) {
				e.unload(rep)
			}
			e.dirty = true
		}
	case autoscale.RemoveWorker:
		if w := e.worker(a.Worker); w != nil {
			e.removeWorker(w)
		}
	}
}

func (e *engine) worker(id string) *simWorker {
	for _, w := range e.workers {
		if w.id == id {
			return w
		}
	}
	return nil
}

// removeWorker stops a worker; what it still held fails.
func (e *engine) removeWorker(w *simWorker) {
	for _, rep := range append([]*replica(nil), w.replicas...) {
		e.remove(rep)
	}
	w.removed = true
	e.removedWorkerCost += w.class.PricePerHour * float64(e.now-w.started) / float64(time.Hour)
	for i, x := range e.workers {
		if x == w {
			e.workers = append(e.workers[:i], e.workers[i+1:]...)
			break
		}
	}
	e.dirty = true
}
