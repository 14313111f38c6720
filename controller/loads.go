package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/worker"
)

// loadOp is one load the controller started; concurrent requests for the
// same variant on the same worker share it.
type loadOp struct {
	key     string
	variant catalog.Variant
	worker  string
	reserve int64
	started time.Time
	done    chan struct{}
	replica string
	err     error
	ended   time.Time // when it finished
	// orphaned: the architecture was deleted while the load ran; the
	// replica is unloaded as soon as it exists.
	orphaned bool
}

// finishedGrace is how long a finished load stands in for its replica in
// the snapshot while the worker's reports catch up (a report is due every
// StateEvery; this leaves room for several).
const finishedGrace = 2 * time.Second

// leavingGrace is how long a replica known to be going stays out of the
// selection state: past the workers' next reports, which then show it
// draining or gone (replica IDs are not reused within a worker's life).
const leavingGrace = 10 * time.Second

// leave takes replica of worker out of routing now, ahead of the worker's
// next report: it is being unloaded, or a request found it draining or
// gone. The caller refreshes the state when it wants the change seen.
func (c *Controller) leave(workerID, replica string) {
	c.mu.Lock()
	c.leaving[workerID+"/"+replica] = c.now()
	c.mu.Unlock()
}

// stay puts back a replica leave took out: its unload failed.
func (c *Controller) stay(workerID, replica string) {
	c.mu.Lock()
	delete(c.leaving, workerID+"/"+replica)
	c.mu.Unlock()
}

// visible reports whether the worker already shows this load as a replica
// in the loading state (then its memory is in the worker's ledger).
func (l *loadOp) visible(ws worker.Status) bool {
	for _, r := range ws.Replicas {
		if r.Variant == l.variant.Name && r.State == worker.StateLoading {
			return true
		}
	}
	return false
}

// startLoad loads v on worker w off the request path, or joins a load of
// the same variant on the same worker already in flight. The worker gets v
// as it runs on its hardware class (that class's profile, when v has one),
// and the load books catalog's memory need of v on that class: the same
// bytes the worker's ledger reserves and selection checked.
func (c *Controller) startLoad(v catalog.Variant, a catalog.Architecture, w Worker, reason string) *loadOp {
	key := v.Name + "@" + w.ID()
	class := c.classOf(w)
	if on, ok := v.OnClass(class); ok {
		v = on
	}
	c.mu.Lock()
	if l, ok := c.loads[key]; ok {
		c.mu.Unlock()
		return l
	}
	l := &loadOp{key: key, variant: v, worker: w.ID(), reserve: v.MemoryNeedOn(class),
		started: c.now(), done: make(chan struct{})}
	c.loads[key] = l
	ctx := c.bgCtx
	c.bg.Add(1)
	c.mu.Unlock()
	c.log.Info("loading variant", "variant", v.Name, "worker", w.ID(), "reason", reason)
	c.kick()
	go func() {
		defer c.bg.Done()
		lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		id, err := w.Load(lctx, v, a)
		if err != nil {
			err = fmt.Errorf("load %s on %s: %w", v.Name, w.ID(), err)
			c.log.Error("load failed", "variant", v.Name, "worker", w.ID(), "err", err)
		} else {
			c.log.Info("variant loaded", "variant", v.Name, "worker", w.ID(), "replica", id, "elapsed", c.now().Sub(l.started).Round(time.Millisecond))
		}
		c.mu.Lock()
		orphaned := l.orphaned
		c.mu.Unlock()
		if err == nil && orphaned {
			if uerr := w.Unload(id); uerr != nil {
				c.log.Warn("unload a replica of a deleted architecture", "replica", id, "err", uerr)
			}
			c.log.Info("unloading a replica whose architecture was deleted while it loaded", "replica", id, "worker", w.ID())
			id, err = "", fmt.Errorf("load %s on %s: its architecture %s was deleted", v.Name, w.ID(), v.Architecture)
		}
		c.mu.Lock()
		l.replica, l.err, l.ended = id, err, c.now()
		delete(c.loads, key)
		// A query whose snapshot still showed the load in flight finds
		// the replica here (one entry per variant and worker).
		c.finished[key] = l
		c.mu.Unlock()
		// Fold the new replica into the snapshot before waking the waiters,
		// so the queries after theirs see it loaded.
		c.refreshState()
		close(l.done)
	}()
	return l
}

// classOf names w's hardware class: as the current snapshot has it, or as
// the worker reports it when the snapshot does not list it yet.
func (c *Controller) classOf(w Worker) string {
	if v := c.view.Load(); v != nil && v.snap != nil {
		for i := range v.snap.NumWorkers() {
			if sw := v.snap.Worker(int32(i)); sw.ID == w.ID() {
				return sw.Class.Name
			}
		}
	}
	return w.State().Hardware.Name
}

// wait blocks until the load finishes or ctx ends.
func (l *loadOp) wait(ctx context.Context) (string, error) {
	select {
	case <-l.done:
		return l.replica, l.err
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for %s to load: %w", l.variant.Name, ctx.Err())
	}
}
