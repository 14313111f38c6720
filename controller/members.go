package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc"
)

// workerSet is the controller's workers, replaced whole on every change so
// the request path reads it without a lock.
type workerSet struct {
	byID  map[string]Worker
	order []Worker // by ID
}

func (s *workerSet) with(w Worker) *workerSet {
	n := &workerSet{byID: make(map[string]Worker, len(s.byID)+1)}
	for id, x := range s.byID {
		n.byID[id] = x
	}
	n.byID[w.ID()] = w
	n.sort()
	return n
}

func (s *workerSet) without(id string) *workerSet {
	n := &workerSet{byID: make(map[string]Worker, len(s.byID))}
	for k, x := range s.byID {
		if k != id {
			n.byID[k] = x
		}
	}
	n.sort()
	return n
}

func (s *workerSet) sort() {
	s.order = s.order[:0]
	for _, w := range s.byID {
		s.order = append(s.order, w)
	}
	slices.SortFunc(s.order, func(a, b Worker) int { return strings.Compare(a.ID(), b.ID()) })
}

// worker returns the worker with that ID, or nil.
func (c *Controller) worker(id string) Worker { return c.set.Load().byID[id] }

// workersNow lists the workers, by ID.
func (c *Controller) workersNow() []Worker { return c.set.Load().order }

// remoteClient is what the controller needs of a worker it dialled.
type remoteClient interface {
	Worker
	Profile(ctx context.Context, v catalog.Variant, a catalog.Architecture) (catalog.Profile, error)
	Close() error
}

// remote is a worker that joined over the Registry service: calls go to
// its Worker service on one persistent connection, and its state is the
// last one it reported on its Join stream — reading it costs no call.
type remote struct {
	remoteClient
	c      *Controller
	hello  workerrpc.Hello
	joined time.Time
	status atomic.Pointer[worker.Status]
	seen   atomic.Int64  // Unix ns of the last report
	gone   atomic.Bool   // left, timed out or replaced
	done   chan struct{} // closed when gone: ends the Join stream
	// suspect is set when a call failed as if the worker were gone; the
	// worker is out of routing until its next report.
	suspect atomic.Bool
}

var _ workerrpc.Member = (*remote)(nil)

// ID is the ID the worker announced.
func (r *remote) ID() string { return r.hello.WorkerID }

// State is the last reported state; a worker that is gone, suspected or
// silent past the heartbeat timeout reads as not running.
func (r *remote) State() worker.Status {
	var st worker.Status
	if p := r.status.Load(); p != nil {
		st = *p
	}
	st.ID = r.hello.WorkerID
	st.Hardware = r.hello.Class
	if r.gone.Load() || r.suspect.Load() || r.c.now().Sub(time.Unix(0, r.seen.Load())) > r.c.cfg.HeartbeatTimeout {
		st.Running = false
	}
	return st
}

// Report takes a state report (the heartbeat).
func (r *remote) Report(st worker.Status) {
	r.status.Store(&st)
	r.seen.Store(r.c.now().UnixNano())
	if r.suspect.Swap(false) {
		r.c.log.Info("worker reports again; back in routing", "worker", r.ID())
	}
	r.c.kick()
}

// Done is closed once the controller has let the worker go.
func (r *remote) Done() <-chan struct{} { return r.done }

// Leave is called when the Join stream ends.
func (r *remote) Leave(err error) {
	why := "its stream ended"
	if err != nil && !errors.Is(err, io.EOF) {
		why = "its stream ended: " + err.Error()
	}
	r.c.drop(r, why)
}

// ID names the controller in Join replies.
func (c *Controller) ID() string { return c.cfg.ID }

// ReportEvery is how often joined workers report their state.
func (c *Controller) ReportEvery() time.Duration { return c.cfg.StateEvery }

// Join admits a worker that announced itself: the class must be in the
// controller's hardware catalogue and the worker must answer on the
// address it gave. A worker that joins again (a new stream after a
// restart of either side) replaces its old entry.
func (c *Controller) Join(ctx context.Context, h workerrpc.Hello) (workerrpc.Member, error) {
	if _, ok := catalog.FindClass(c.cfg.Classes, h.Class.Name); !ok {
		return nil, fmt.Errorf("hardware class %q is not in this controller's catalogue (%s); start the worker with one of those, or add it with --classes",
			h.Class.Name, strings.Join(catalog.ClassNames(c.cfg.Classes), ", "))
	}
	if c.cfg.Dial == nil {
		return nil, errors.New("this controller does not accept remote workers")
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := c.cfg.Dial(dctx, h.Address)
	if err != nil {
		return nil, fmt.Errorf("the controller cannot reach the worker at %s (is --advertise right?): %w", h.Address, err)
	}
	if cl.ID() != h.WorkerID {
		cl.Close()
		return nil, fmt.Errorf("the worker at %s says it is %q, not %q", h.Address, cl.ID(), h.WorkerID)
	}
	r := &remote{remoteClient: cl, c: c, hello: h, joined: c.now(), done: make(chan struct{})}
	r.seen.Store(c.now().UnixNano())
	c.mu.Lock()
	old := c.set.Load().byID[h.WorkerID]
	if _, isRemote := old.(*remote); old != nil && !isRemote {
		c.mu.Unlock()
		cl.Close()
		return nil, fmt.Errorf("worker ID %s is taken by an in-process worker", h.WorkerID)
	}
	c.set.Store(c.set.Load().with(r))
	// A worker that joins again may be a new process whose replica IDs
	// start over: what was leaving on the old one says nothing of them.
	for key := range c.leaving {
		if strings.HasPrefix(key, h.WorkerID+"/") {
			delete(c.leaving, key)
		}
	}
	c.mu.Unlock()
	if o, ok := old.(*remote); ok && !o.gone.Swap(true) {
		close(o.done)
		o.remoteClient.Close()
	}
	c.log.Info("worker joined", "worker", h.WorkerID, "address", h.Address, "class", h.Class.Name,
		"incarnation", h.Incarnation, "rejoin", old != nil)
	c.refreshState()
	c.profileSoon()
	return r, nil
}

// drop takes a remote worker out of routing and closes its connection;
// calls in flight on it fail and are retried elsewhere (see infer).
func (c *Controller) drop(r *remote, why string) {
	if r.gone.Swap(true) {
		return
	}
	close(r.done)
	c.mu.Lock()
	if c.set.Load().byID[r.ID()] == Worker(r) {
		c.set.Store(c.set.Load().without(r.ID()))
	}
	c.mu.Unlock()
	r.remoteClient.Close()
	c.log.Warn("worker left routing", "worker", r.ID(), "reason", why)
	c.refreshState()
}

// checkHeartbeats drops remote workers silent for longer than the
// heartbeat timeout.
func (c *Controller) checkHeartbeats() {
	now := c.now()
	for _, w := range c.workersNow() {
		r, ok := w.(*remote)
		if !ok {
			continue
		}
		if silent := now.Sub(time.Unix(0, r.seen.Load())); silent > c.cfg.HeartbeatTimeout {
			c.drop(r, fmt.Sprintf("no report for %s (heartbeat timeout %s)", silent.Round(time.Millisecond), c.cfg.HeartbeatTimeout))
		}
	}
}

// suspectWorker takes a worker out of routing after a call failed as if it
// were gone, until it reports again.
func (c *Controller) suspectWorker(w Worker, err error) {
	r, ok := w.(*remote)
	if !ok {
		return
	}
	if !r.suspect.Swap(true) {
		c.log.Warn("worker failed a call; out of routing until it reports again", "worker", r.ID(), "err", err)
	}
	c.refreshState()
}

// WorkerInfo is one worker as GET /v1/workers and `infaas workers` show it.
type WorkerInfo struct {
	worker.Status
	Address     string    `json:"address,omitempty"`
	Remote      bool      `json:"remote"`
	Health      string    `json:"health"` // running, suspect, silent, stopped
	JoinedAt    time.Time `json:"joined_at,omitzero"`
	LastReport  time.Time `json:"last_report,omitzero"`
	Incarnation string    `json:"incarnation,omitempty"`
}

// Workers describes every worker the controller routes to.
func (c *Controller) Workers() []WorkerInfo {
	var out []WorkerInfo
	for _, w := range c.workersNow() {
		wi := WorkerInfo{Status: w.State()}
		wi.Health = "running"
		if r, ok := w.(*remote); ok {
			wi.Remote, wi.Address, wi.JoinedAt, wi.Incarnation = true, r.hello.Address, r.joined, r.hello.Incarnation
			wi.LastReport = time.Unix(0, r.seen.Load()).UTC()
			if r.suspect.Load() {
				wi.Health = "suspect"
			} else if !wi.Running && r.status.Load() != nil && r.status.Load().Running {
				wi.Health = "silent"
			}
		}
		if wi.Health == "running" && !wi.Running {
			wi.Health = "stopped"
		}
		out = append(out, wi)
	}
	return out
}

// WorkerStates is every worker's state, for metrics.
func (c *Controller) WorkerStates() []worker.Status {
	ws := c.workersNow()
	out := make([]worker.Status, len(ws))
	for i, w := range ws {
		out[i] = w.State()
	}
	return out
}
