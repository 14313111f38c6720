package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/metrics"
	"github.com/infaas/infaas/selection"
	"github.com/infaas/infaas/worker"
)

// Worker is the dispatcher-to-worker boundary. The in-process worker
// (workerrpc.Local) and the gRPC client (workerrpc.Client) both satisfy it.
type Worker interface {
	ID() string
	Load(ctx context.Context, v catalog.Variant, a catalog.Architecture) (string, error)
	Unload(id string) error
	Infer(ctx context.Context, id string, req worker.Request) (worker.Response, error)
	State() worker.Status
}

// Config is the controller's part of the server configuration.
type Config struct {
	// Policy names the selection policy ("infaas", "fixed").
	Policy       string
	PolicyConfig selection.Config
	// StateEvery is how often worker state is folded into the snapshot;
	// CatalogEvery how often the metadata store is re-read.
	StateEvery   time.Duration
	CatalogEvery time.Duration
	// Classes price the hardware classes variants run on.
	Classes []catalog.HardwareClass
	// DecisionLog is how many recent decisions GET /v1/decisions keeps.
	DecisionLog int
	// Metrics, when set, records every query (Prometheus).
	Metrics *metrics.Metrics
	// ID names this controller to the workers that join it.
	ID string
	// HeartbeatTimeout: a joined worker that reports nothing for this long
	// leaves routing (its stream ending does so at once).
	HeartbeatTimeout time.Duration
	// Dial connects to a joining worker's Worker service; nil refuses
	// remote workers.
	Dial func(ctx context.Context, addr string) (RemoteWorker, error)
	// Autoscale configures the autoscalers (none when empty).
	Autoscale AutoscaleConfig
	// EventLog is how many events GET /v1/events keeps; 0 means 4096.
	EventLog int
}

// RemoteWorker is a worker reached over the network (workerrpc.Client).
type RemoteWorker = remoteClient

// DefaultConfig: the infaas policy, state every 50 ms, catalog every second.
func DefaultConfig() Config {
	return Config{Policy: "infaas", StateEvery: 50 * time.Millisecond, CatalogEvery: time.Second,
		Classes: []catalog.HardwareClass{catalog.LocalCPU()}, DecisionLog: 256, ID: "controller",
		HeartbeatTimeout: time.Second}
}

// view is everything one query reads, swapped atomically.
type view struct {
	snap     *selection.Snapshot
	archs    map[string]catalog.Architecture
	useCases map[string]catalog.UseCase
	variants map[string]catalog.Variant
	version  string // catalog fingerprint
	gen      uint64 // bumped with every new catalog (autoscale.State.Epoch)
}

// Controller answers queries: it selects a variant and a replica from an
// in-memory snapshot, starts loads off the critical path and forwards the
// query to the worker.
type Controller struct {
	cfg    Config
	store  metadata.Store
	policy selection.Policy
	set    atomic.Pointer[workerSet]
	log    *slog.Logger
	// onJoin, when set, hears every worker that joins (by class).
	onJoin func(catalog.HardwareClass)
	now    func() time.Time

	view    atomic.Pointer[view]
	viewMu  sync.Mutex    // serialises the view's writers
	viewGen atomic.Uint64 // the last view's gen
	refresh chan struct{} // coalesced "state changed" trigger
	profile chan struct{} // coalesced "look for variants to profile" trigger

	mu       sync.Mutex
	loads    map[string]*loadOp // variant@worker → in flight
	finished map[string]*loadOp // variant@worker → the last load that finished
	// leaving holds replicas known to be going (worker/replica → since):
	// this controller asked for their unload, or a worker answered that
	// one is draining or gone. The selection state leaves them out until
	// the workers' reports catch up (leavingGrace).
	leaving  map[string]time.Time
	inflight map[string]*atomic.Int64
	bg       sync.WaitGroup
	bgCtx    context.Context

	decisions *decisionLog
	stats     statsBook
	events    *events.Log
	traffic   *autoscale.TrafficLog
	scale     *scaler
}

// New returns a controller over store and the in-process workers (more
// join over the Registry service); it starts nothing.
func New(cfg Config, store metadata.Store, workers []Worker, log *slog.Logger) (*Controller, error) {
	pol, err := selection.Lookup(cfg.Policy, cfg.PolicyConfig)
	if err != nil {
		return nil, err
	}
	if cfg.HeartbeatTimeout <= 0 {
		return nil, errors.New("controller: the heartbeat timeout must be positive")
	}
	if cfg.StateEvery <= 0 || cfg.CatalogEvery <= 0 {
		return nil, errors.New("controller: the state and catalog refresh periods must be positive")
	}
	sc, err := newScaler(cfg.Autoscale)
	if err != nil {
		return nil, err
	}
	if cfg.EventLog <= 0 {
		cfg.EventLog = 4096
	}
	m := cfg.Metrics
	c := &Controller{
		cfg: cfg, store: store, policy: pol, log: log, now: time.Now,
		refresh: make(chan struct{}, 1), profile: make(chan struct{}, 1), loads: map[string]*loadOp{}, finished: map[string]*loadOp{}, leaving: map[string]time.Time{}, inflight: map[string]*atomic.Int64{},
		decisions: newDecisionLog(cfg.DecisionLog), bgCtx: context.Background(),
		events:  events.NewLog(cfg.EventLog, func(e events.Event) { m.Action(e.Source, e.Action, e.Reason) }),
		traffic: autoscale.NewTrafficLog(10 * time.Second),
		scale:   sc,
	}
	set := &workerSet{byID: map[string]Worker{}}
	for _, w := range workers {
		if _, dup := set.byID[w.ID()]; dup {
			return nil, fmt.Errorf("controller: worker %s is listed twice", w.ID())
		}
		set = set.with(w)
	}
	c.set.Store(set)
	return c, nil
}

// Policy is the selection policy's name.
func (c *Controller) Policy() string { return c.policy.Name() }

// Run keeps the snapshot fresh until ctx ends, then waits for background
// work (loads, profiling). Worker state is folded in every StateEvery and
// whenever a worker reports; the catalog is re-read on every change
// signal from the metadata store and every CatalogEvery, on its own
// goroutine, so a slow or unreachable store never delays state updates
// (queries go on being served from the last snapshot).
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	c.bgCtx = ctx
	c.mu.Unlock()
	if err := c.Refresh(ctx); err != nil {
		return err
	}
	st := time.NewTicker(c.cfg.StateEvery)
	defer st.Stop()
	defer c.bg.Wait()
	c.bg.Add(3)
	go func() {
		defer c.bg.Done()
		c.runCatalog(ctx)
	}()
	go func() {
		defer c.bg.Done()
		c.runAutoscale(ctx)
	}()
	go func() {
		defer c.bg.Done()
		c.runClassProfiles(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-st.C:
			c.checkHeartbeats()
			c.refreshState()
		case <-c.refresh:
			c.refreshState()
		}
	}
}

// runCatalog re-reads the catalog on every change signal (another
// controller's registrations arrive this way, at once) and every
// CatalogEvery.
func (c *Controller) runCatalog(ctx context.Context) {
	var changes <-chan struct{}
	if n, ok := c.store.(changeNotifier); ok {
		ch, err := n.Changes(ctx)
		if err != nil {
			c.log.Warn("no change notifications from the metadata store; the catalog refreshes every period only", "period", c.cfg.CatalogEvery, "err", err)
		}
		changes = ch
	}
	ct := time.NewTicker(c.cfg.CatalogEvery)
	defer ct.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok { // the store closed it: periodic refreshes only
				changes = nil
				continue
			}
		case <-ct.C:
		}
		err := c.Refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			c.log.Error("refresh catalog; serving from the last snapshot", "err", err)
		case err == nil && failing:
			c.log.Info("catalog refresh works again")
		}
		failing = err != nil
	}
}

// Refresh re-reads the catalog from the metadata store and rebuilds the snapshot.
func (c *Controller) Refresh(ctx context.Context) error {
	archs, err := c.store.Architectures(ctx)
	if err != nil {
		return err
	}
	vs, err := c.store.AllVariants(ctx)
	if err != nil {
		return err
	}
	ucs, err := c.store.UseCases(ctx)
	if err != nil {
		return err
	}
	version := catalogVersion(archs, vs)
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	if old := c.view.Load(); old != nil && old.version == version {
		c.refreshStateLocked()
		return nil
	}
	snap, err := selection.NewSnapshot(selection.Catalog{Architectures: archs, Variants: vs, Classes: c.cfg.Classes}, c.state())
	if err != nil {
		return err
	}
	v := &view{snap: snap, archs: map[string]catalog.Architecture{}, useCases: map[string]catalog.UseCase{},
		variants: map[string]catalog.Variant{}, version: version, gen: c.viewGen.Add(1)}
	for _, a := range archs {
		v.archs[a.Name] = a
	}
	for _, u := range ucs {
		v.useCases[u.ID()] = u
	}
	for _, x := range vs {
		v.variants[x.Name] = x
	}
	c.view.Store(v)
	c.profileSoon()
	return nil
}

// catalogVersion fingerprints what the snapshot's catalog half is built
// from: architectures with their model, variants with the classes they
// are profiled on.
func catalogVersion(archs []catalog.Architecture, vs []catalog.Variant) string {
	var b strings.Builder
	fmt.Fprint(&b, len(archs), " ", len(vs))
	for _, a := range archs {
		b.WriteString("|" + a.Name + a.ModelDigest)
	}
	for _, v := range vs {
		b.WriteString("|" + v.Name)
		for _, cl := range v.ProfiledClasses() {
			b.WriteString("," + cl)
		}
	}
	return b.String()
}

// refreshState folds the workers' current state into the snapshot.
func (c *Controller) refreshState() {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	c.refreshStateLocked()
}

// refreshStateLocked is refreshState with viewMu held: the view's writers
// take turns, so a state refresh never puts back a catalog that a
// concurrent Refresh just replaced.
func (c *Controller) refreshStateLocked() {
	old := c.view.Load()
	if old == nil {
		return
	}
	snap, err := old.snap.WithState(c.state())
	if err != nil {
		c.log.Error("refresh state", "err", err)
		return
	}
	nv := *old
	nv.snap = snap
	c.view.Store(&nv)
}

// changeNotifier is a metadata store that signals catalog changes made
// by any process.
type changeNotifier interface {
	Changes(ctx context.Context) (<-chan struct{}, error)
}

// kick asks Run to refresh the state soon (coalesced).
func (c *Controller) kick() {
	select {
	case c.refresh <- struct{}{}:
	default:
	}
}

// state collects every worker's state for the selection snapshot.
func (c *Controller) state() selection.State {
	var st selection.State
	c.mu.Lock()
	loads := make([]*loadOp, 0, len(c.loads))
	for _, l := range c.loads {
		loads = append(loads, l)
	}
	// Replicas known to be leaving (Controller.leaving) are left out.
	var leaving map[string]bool
	for key, since := range c.leaving {
		if c.now().Sub(since) > leavingGrace {
			delete(c.leaving, key)
			continue
		}
		if leaving == nil {
			leaving = map[string]bool{}
		}
		leaving[key] = true
	}
	// Loads that finished: their replica is ready even where the worker's
	// last report, sent before the load returned, shows it loading or not
	// at all. Without this a fresh replica reads as "loading" (its whole
	// profiled load time left) until the next report, and a second load of
	// the same variant may start.
	readyNow := map[string]*loadOp{} // replica ID → its finished load
	for key, l := range c.finished {
		switch {
		case l.err != nil || c.now().Sub(l.ended) > finishedGrace:
			delete(c.finished, key)
		case !leaving[l.worker+"/"+l.replica]:
			readyNow[l.worker+"/"+l.replica] = l
		}
	}
	c.mu.Unlock()
	var variants map[string]catalog.Variant
	if v := c.view.Load(); v != nil {
		variants = v.variants
	}
	for _, w := range c.workersNow() {
		ws := w.State()
		free := ws.MemoryCapacity - ws.MemoryReserved
		util := utilization(ws, variants)
		for _, r := range ws.Replicas {
			if r.State == worker.StateDraining || leaving[ws.ID+"/"+r.ID] {
				continue
			}
			// Outstanding samples: the worker's count (every controller's
			// requests, as of its last report) and this controller's own
			// (dispatched, not yet answered), which selection reads live at
			// decision time and takes the larger of — adding them would
			// count this controller's requests twice.
			out := r.Stats.Queued + r.Stats.Executing
			loading := r.State == worker.StateLoading
			if _, done := readyNow[ws.ID+"/"+r.ID]; done {
				loading = false
				delete(readyNow, ws.ID+"/"+r.ID)
			}
			// A replica is as healthy as the worker that reports it: one
			// that stopped, went silent or failed a call is a last resort.
			st.Replicas = append(st.Replicas, selection.Replica{
				ID: snapshotID(ws.ID, r.ID), Variant: r.Variant, Worker: ws.ID,
				Healthy: ws.Running, Overloaded: r.Health.Overloaded, Interfered: r.Health.Interfered,
				Loading: loading, QueuedSamples: out, Live: c.counter(ws.ID, r.ID), Slowness: r.Stats.Slowness,
			})
		}
		// Loads that finished and the worker's report does not show yet.
		for key, l := range readyNow {
			if l.worker == ws.ID {
				free -= l.reserve
				st.Replicas = append(st.Replicas, selection.Replica{ID: snapshotID(ws.ID, l.replica), Variant: l.variant.Name, Worker: ws.ID,
					Healthy: ws.Running, Live: c.counter(ws.ID, l.replica)})
				delete(readyNow, key)
			}
		}
		// Loads the controller started that the worker does not show yet.
		for _, l := range loads {
			if l.worker == ws.ID && !l.visible(ws) {
				free -= l.reserve
				st.Replicas = append(st.Replicas, selection.Replica{ID: "loading:" + l.key, Variant: l.variant.Name, Worker: ws.ID,
					Healthy: true, Loading: true, LoadStarted: l.started})
			}
		}
		seen := make(map[string]bool, len(ws.Replicas))
		for _, r := range ws.Replicas {
			seen[r.ID] = true
		}
		c.pruneCounters(ws.ID, seen)
		st.Workers = append(st.Workers, selection.Worker{
			ID: ws.ID, Class: ws.Hardware, Cores: ws.Hardware.Cores, MemoryBytes: ws.MemoryCapacity,
			FreeMemoryBytes: max(free, 0), Utilization: util, Healthy: ws.Running && !c.scale.isDraining(ws.ID),
		})
	}
	return st
}

// snapshotID names a worker's replica in the snapshot: replica IDs are
// unique on their worker only (two workers each have "v#1").
func snapshotID(workerID, replica string) string { return workerID + "/" + replica }

// pruneCounters forgets the in-flight counters of a worker's replicas
// that are gone and idle.
func (c *Controller) pruneCounters(workerID string, present map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, n := range c.inflight {
		w, id, _ := strings.Cut(key, "/")
		if w == workerID && !present[id] && n.Load() == 0 {
			delete(c.inflight, key)
		}
	}
}

// counter is the controller's own count of samples dispatched to a replica
// and not yet answered, so decisions between state refreshes see them.
func (c *Controller) counter(workerID, replica string) *atomic.Int64 {
	key := workerID + "/" + replica
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.inflight[key]
	if !ok {
		n = &atomic.Int64{}
		c.inflight[key] = n
	}
	return n
}

// Ready reports whether the controller can take queries: it has a
// snapshot and a worker is running — and the snapshot knows it (a worker
// that started after the last refresh is folded in at once).
func (c *Controller) Ready(context.Context) bool {
	v := c.view.Load()
	if v == nil {
		return false
	}
	for i := range v.snap.NumWorkers() {
		if v.snap.Worker(int32(i)).Healthy {
			return true
		}
	}
	for _, w := range c.workersNow() {
		if w.State().Running {
			c.refreshState()
			return true
		}
	}
	return false
}

// UnloadArchitecture unloads every replica of an architecture's variants
// (after it was deleted); replicas drain their queues first. Besides the
// replicas the workers report, it covers what their last reports may not
// show yet: loads in flight (unloaded as soon as they finish) and loads
// that just finished.
func (c *Controller) UnloadArchitecture(name string) {
	unloaded := map[string]bool{}
	for _, w := range c.workersNow() {
		for _, r := range w.State().Replicas {
			if r.Architecture != name || r.State == worker.StateDraining {
				continue
			}
			unloaded[snapshotID(w.ID(), r.ID)] = true
			if err := w.Unload(r.ID); err != nil {
				c.log.Warn("unload", "replica", r.ID, "err", err)
			} else {
				c.log.Info("unloading replica of a deleted architecture", "replica", r.ID, "architecture", name)
			}
		}
	}
	c.mu.Lock()
	for _, l := range c.loads {
		if l.variant.Architecture == name {
			l.orphaned = true
		}
	}
	var recent []*loadOp
	for _, l := range c.finished {
		if l.err == nil && l.variant.Architecture == name && !unloaded[snapshotID(l.worker, l.replica)] {
			recent = append(recent, l)
		}
	}
	c.mu.Unlock()
	for _, l := range recent {
		if w := c.worker(l.worker); w != nil {
			if err := w.Unload(l.replica); err != nil && !errors.Is(err, worker.ErrUnknownReplica) {
				c.log.Warn("unload", "replica", l.replica, "err", err)
			}
		}
	}
	c.refreshState()
}
