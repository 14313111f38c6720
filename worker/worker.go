package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/inference"
)

// Blobs is where model files come from: the model repository, or a fake.
// Get returns verified bytes for a digest.
type Blobs interface {
	Get(ctx context.Context, digest string) ([]byte, error)
}

// Worker phases.
const (
	phaseIdle = iota
	phaseRunning
	phaseStopped
)

// Worker hosts replicas. Its constructor starts nothing; Run owns the
// replicas' batchers and the health checks. Safe for concurrent use.
//
// Load and Infer work before Run starts (requests queue until it does);
// after Run returns they fail with ErrStopped.
type Worker struct {
	cfg   Config
	blobs Blobs
	log   *slog.Logger

	mu       sync.Mutex // guards everything below, and each replica's started flag
	ledger   *ledger
	replicas map[string]*replica
	seq      int
	phase    int
	stop     chan struct{} // closed when Run's context ends
	wg       sync.WaitGroup
}

// New validates cfg and returns an idle worker.
func New(cfg Config, blobs Blobs) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if blobs == nil {
		return nil, errors.New("worker: a model repository (Blobs) is required")
	}
	return &Worker{
		cfg:      cfg,
		blobs:    blobs,
		log:      cfg.Logger.With("worker", cfg.ID),
		ledger:   newLedger(cfg.MemoryBytes),
		replicas: map[string]*replica{},
		stop:     make(chan struct{}),
	}, nil
}

// Config returns the worker's configuration with defaults filled in.
func (w *Worker) Config() Config { return w.cfg }

// Run starts the batchers of the replicas loaded so far (later ones start
// as they load) and checks replica health every monitor bucket, logging
// flag changes. When ctx ends it stops the batchers (a running batch
// finishes), fails queued requests with ErrStopped, closes every session
// and returns nil. Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.phase != phaseIdle {
		w.mu.Unlock()
		return errors.New("worker: Run called twice")
	}
	w.phase = phaseRunning
	for _, r := range w.replicas {
		r.mu.Lock()
		loaded := r.sess != nil
		r.mu.Unlock()
		if loaded {
			w.startLocked(r)
		}
	}
	w.mu.Unlock()
	w.log.Info("worker running", "hardware", w.cfg.Hardware.Name, "memory_bytes", w.cfg.MemoryBytes)

	tick := time.NewTicker(w.cfg.MonitorBucket)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-tick.C:
			w.checkHealth()
		}
	}

	w.mu.Lock()
	w.phase = phaseStopped
	close(w.stop)
	w.mu.Unlock()
	w.wg.Wait()
	w.mu.Lock()
	var rest []*replica
	for _, r := range w.replicas {
		r.mu.Lock()
		loading := r.state == StateLoading
		r.mu.Unlock()
		if !loading { // a load in flight cleans up after itself
			rest = append(rest, r)
		}
	}
	w.mu.Unlock()
	for _, r := range rest {
		w.finalize(r, fmt.Errorf("%w: worker %s is shutting down; retry on another worker", ErrStopped, w.cfg.ID))
	}
	w.log.Info("worker stopped")
	return nil
}

// startLocked starts r's batcher. Call with w.mu held while running.
func (w *Worker) startLocked(r *replica) {
	r.started = true
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if r.loop(w.stop, w.cfg.MaxQueueDelay) {
			w.finalize(r, nil)
		}
	}()
}

// Load reserves memory for variant, fetches its graph, builds an ONNX
// Runtime session with the variant's settings, warms it with one run, and
// registers a replica, returning its ID. The reservation is made before anything is fetched and
// fails with ErrNoMemory if it would over-commit the worker. Loading holds
// no lock other replicas need, so serving goes on meanwhile. Loading the
// same variant twice makes two replicas.
func (w *Worker) Load(ctx context.Context, variant catalog.Variant, arch catalog.Architecture) (string, error) {
	if err := w.compatible(variant, arch); err != nil {
		return "", fmt.Errorf("load %s: %w", variant.Name, err)
	}
	need := catalog.MemoryNeed(variant.Profile, variant.FileBytes)
	if need <= 0 {
		return "", fmt.Errorf("load %s: %w: neither a profiled peak memory nor a file size to reserve memory by", variant.Name, ErrIncompatible)
	}

	w.mu.Lock()
	if w.phase == phaseStopped {
		w.mu.Unlock()
		return "", fmt.Errorf("load %s: %w", variant.Name, ErrStopped)
	}
	w.seq++
	id := fmt.Sprintf("%s#%d", variant.Name, w.seq)
	if err := w.ledger.reserve(id, need); err != nil {
		w.mu.Unlock()
		return "", fmt.Errorf("load %s: %w", variant.Name, err)
	}
	r := &replica{
		id: id, variant: variant, arch: arch, now: w.cfg.Now,
		mon:   health.NewMonitor(w.cfg.Now, w.cfg.MonitorWindow, w.cfg.MonitorBucket),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		state: StateLoading,
	}
	w.replicas[id] = r
	w.mu.Unlock()
	w.log.Info("loading replica", "replica", id, "reserved_bytes", need)

	start := w.cfg.Now()
	sess, err := w.open(ctx, variant, arch)
	if err == nil && ctx.Err() != nil {
		sess.Close()
		err = ctx.Err()
	}
	if err != nil {
		w.forget(r)
		w.log.Warn("load failed", "replica", id, "err", err)
		return "", fmt.Errorf("load %s: %w", variant.Name, err)
	}

	w.mu.Lock()
	r.mu.Lock()
	switch {
	case w.phase == phaseStopped:
		err = fmt.Errorf("load %s: %w", variant.Name, ErrStopped)
	case r.state == StateDraining:
		err = fmt.Errorf("load %s: %w: unloaded while loading", variant.Name, ErrDraining)
	default:
		r.ready(sess, w.cfg.QueueBound, w.cfg.Now().Sub(start))
	}
	r.mu.Unlock()
	if err == nil && w.phase == phaseRunning {
		w.startLocked(r)
	}
	w.mu.Unlock()
	if err != nil {
		sess.Close()
		w.forget(r)
		return "", err
	}
	w.log.Info("replica ready", "replica", id, "load_ms", r.loadTime.Milliseconds(), "max_batch", r.maxBatch)
	return id, nil
}

// compatible checks what can be checked before fetching anything.
func (w *Worker) compatible(v catalog.Variant, arch catalog.Architecture) error {
	switch {
	case v.Name == "":
		return fmt.Errorf("%w: the variant has no name", ErrIncompatible)
	case v.FileDigest == "":
		return fmt.Errorf("%w: the variant has no file digest", ErrIncompatible)
	case v.Architecture != "" && arch.Name != "" && v.Architecture != arch.Name:
		return fmt.Errorf("%w: variant of %s given architecture %s", ErrIncompatible, v.Architecture, arch.Name)
	case v.MaxBatch < 0:
		return fmt.Errorf("%w: max batch %d", ErrIncompatible, v.MaxBatch)
	case arch.InputScale < 0:
		return fmt.Errorf("%w: input scale %v", ErrIncompatible, arch.InputScale)
	}
	if c := w.cfg.Hardware.Cores; c > 0 && v.Provider != executor.ProviderCUDA && v.Threads > c {
		return fmt.Errorf("%w: %s runs %d intra-op threads; this worker (class %s) has %d cores",
			ErrIncompatible, v.Name, v.Threads, w.cfg.Hardware.Name, c)
	}
	if v.Provider == executor.ProviderCUDA && w.cfg.Hardware.Provider != executor.ProviderCUDA {
		return fmt.Errorf("%w: a %s variant needs a %s worker; this one is %s (%s)",
			ErrIncompatible, v.Provider, v.Provider, w.cfg.Hardware.Name, w.cfg.Hardware.Provider)
	}
	return nil
}

// open fetches the graph and builds the session, checking that the worker
// can batch and preprocess its input.
func (w *Worker) open(ctx context.Context, v catalog.Variant, arch catalog.Architecture) (*executor.Session, error) {
	data, err := w.blobs.Get(ctx, v.FileDigest)
	if err != nil {
		return nil, fmt.Errorf("fetch graph: %w", err)
	}
	sess, err := executor.Load(data, executor.Options{Threads: v.Threads, OptLevel: v.OptLevel, Provider: v.Provider})
	if err != nil {
		return nil, err
	}
	if err := checkContract(sess.IO(), arch); err != nil {
		sess.Close()
		return nil, err
	}
	// One warm-up run on zeros: the first request does not pay ONNX
	// Runtime's lazy initialisation, and a graph that cannot run fails the
	// load instead of its first batch.
	warm := max(arch.FixedBatch(), 1)
	inputs := make([]inference.Tensor, len(arch.Inputs))
	for i, t := range arch.Inputs {
		shape := arch.ProfileShape(i, warm)
		inputs[i] = inference.Tensor{Shape: shape, Data: make([]byte, catalog.Elements(shape)*int64(executor.ElementSize(t.DataType)))}
	}
	if _, err := sess.Run(inputs, nil); err != nil {
		sess.Close()
		return nil, fmt.Errorf("warm-up run: %w", err)
	}
	return sess, nil
}

// checkContract verifies that the graph a worker loaded has the tensors
// the architecture's contract names, and that the worker can preprocess
// its input.
func checkContract(io executor.IO, arch catalog.Architecture) error {
	c := arch.Contract
	var problem string
	switch {
	case len(c.Inputs) == 0 || len(c.Outputs) == 0:
		problem = "the architecture's contract lists no inputs or no outputs"
	case len(io.Inputs) != len(c.Inputs) || len(io.Outputs) != len(c.Outputs):
		problem = fmt.Sprintf("the graph has inputs %s and outputs %s; the architecture %s and %s",
			catalog.Names(io.Inputs), catalog.Names(io.Outputs), catalog.Names(c.Inputs), catalog.Names(c.Outputs))
	case c.Batched && !io.Batched:
		problem = "the architecture is batched but the graph has no batch dimension"
	case arch.InputScale != 0 && arch.InputScale != 1 && c.Inputs[0].DataType != "FP32":
		problem = fmt.Sprintf("input scale %v needs an FP32 first input; %q is %s", arch.InputScale, c.Inputs[0].Name, c.Inputs[0].DataType)
	}
	for i := range min(len(io.Inputs), len(c.Inputs)) {
		if problem == "" && (io.Inputs[i].Name != c.Inputs[i].Name || io.Inputs[i].DataType != c.Inputs[i].DataType) {
			problem = fmt.Sprintf("graph input %d is %s %s; the architecture says %s %s", i, io.Inputs[i].Name, io.Inputs[i].DataType, c.Inputs[i].Name, c.Inputs[i].DataType)
		}
	}
	if problem != "" {
		return fmt.Errorf("%w: %s", ErrIncompatible, problem)
	}
	return nil
}

// forget drops a replica that never became ready and frees its memory.
func (w *Worker) forget(r *replica) {
	w.mu.Lock()
	delete(w.replicas, r.id)
	w.ledger.release(r.id)
	w.mu.Unlock()
	r.once.Do(func() { close(r.done) })
}

// finalize closes a replica: fails what is still queued with err (nil when
// it drained), closes its session, then releases its memory. Idempotent.
func (w *Worker) finalize(r *replica, err error) {
	r.once.Do(func() {
		r.mu.Lock()
		if err == nil {
			err = fmt.Errorf("%w: %s was unloaded", ErrDraining, r.id)
		}
		r.fail(err)
		sess := r.sess
		r.sess = nil
		r.state = StateDraining
		r.mu.Unlock()
		if sess != nil {
			r.runMu.Lock() // an inline run finishes first
			defer r.runMu.Unlock()
			if cerr := sess.Close(); cerr != nil {
				w.log.Warn("close session", "replica", r.id, "err", cerr)
			}
		}
		w.mu.Lock()
		delete(w.replicas, r.id)
		w.ledger.release(r.id)
		w.mu.Unlock()
		close(r.done)
		w.log.Info("replica closed", "replica", r.id)
	})
}

// Unload marks a replica draining: it takes no new requests, finishes the
// ones queued or running, then closes its session and releases its memory.
// Unload returns at once; the replica shows as draining in State until it
// is gone. Unloading a replica that is still loading discards it when the
// load completes. Unloading twice is a no-op.
func (w *Worker) Unload(id string) error {
	w.mu.Lock()
	r, ok := w.replicas[id]
	if !ok {
		w.mu.Unlock()
		return fmt.Errorf("unload %s: %w", id, ErrUnknownReplica)
	}
	r.mu.Lock()
	prev := r.state
	r.state = StateDraining
	idle := len(r.queue) == 0 && r.executing == 0
	r.mu.Unlock()
	started := r.started
	w.mu.Unlock()
	if prev != StateDraining {
		w.log.Info("unloading replica", "replica", id, "was", prev)
	}
	switch {
	case prev == StateLoading: // Load discards it when the session is built
	case started:
		r.signal()
	case idle:
		w.finalize(r, nil)
	}
	// Not started with work queued: Run starts its batcher, which drains it.
	return nil
}

// Infer runs req on replica id through its queue and returns the request's
// share of the executed batch. It refuses at once with ErrOverloaded when
// the queue is full or the deadline cannot be met; a request whose ctx
// ends while queued leaves the queue without running.
func (w *Worker) Infer(ctx context.Context, id string, req Request) (Response, error) {
	w.mu.Lock()
	r, ok := w.replicas[id]
	phase := w.phase
	w.mu.Unlock()
	switch {
	case phase == phaseStopped:
		return Response{}, fmt.Errorf("%w: worker %s", ErrStopped, w.cfg.ID)
	case !ok:
		return Response{}, fmt.Errorf("%w: %s on worker %s", ErrUnknownReplica, id, w.cfg.ID)
	}
	return r.infer(ctx, req)
}

// ReplicaInfo describes one replica for the controller.
type ReplicaInfo struct {
	ID            string        `json:"id"`
	Variant       string        `json:"variant"`
	Architecture  string        `json:"architecture"`
	State         string        `json:"state"`
	MaxBatch      int           `json:"max_batch"` // effective: the variant's, capped by a fixed batch dimension
	QueueBound    int           `json:"queue_bound"`
	ReservedBytes int64         `json:"reserved_bytes"`
	LoadedAt      time.Time     `json:"loaded_at,omitzero"`
	LoadTime      time.Duration `json:"load_time"`
	Stats         Stats         `json:"stats"`
	Health        Health        `json:"health"`
}

// Status is the worker's state for the controller.
type Status struct {
	ID             string                `json:"id"`
	Hardware       catalog.HardwareClass `json:"hardware"`
	Running        bool                  `json:"running"`
	MemoryCapacity int64                 `json:"memory_capacity"`
	MemoryReserved int64                 `json:"memory_reserved"`
	Replicas       []ReplicaInfo         `json:"replicas"`
	At             time.Time             `json:"at"`
}

// State snapshots the worker: memory, and every replica with its
// statistics and health flags, sorted by ID.
func (w *Worker) State() Status {
	w.mu.Lock()
	st := Status{
		ID: w.cfg.ID, Hardware: w.cfg.Hardware, Running: w.phase == phaseRunning,
		MemoryCapacity: w.ledger.capacity, MemoryReserved: w.ledger.reserved,
	}
	rs := make([]*replica, 0, len(w.replicas))
	held := make(map[string]int64, len(w.replicas))
	for id, r := range w.replicas {
		rs = append(rs, r)
		held[id] = w.ledger.held[id]
	}
	w.mu.Unlock()
	st.Replicas = make([]ReplicaInfo, 0, len(rs))
	for _, r := range rs {
		info := w.info(r)
		info.ReservedBytes = held[r.id]
		st.Replicas = append(st.Replicas, info)
	}
	slices.SortFunc(st.Replicas, func(a, b ReplicaInfo) int { return strings.Compare(a.ID, b.ID) })
	st.At = w.cfg.Now()
	return st
}

// Replicas lists the replicas (State().Replicas).
func (w *Worker) Replicas() []ReplicaInfo { return w.State().Replicas }

// Replica describes one replica.
func (w *Worker) Replica(id string) (ReplicaInfo, error) {
	w.mu.Lock()
	r, ok := w.replicas[id]
	held := w.ledger.held[id]
	w.mu.Unlock()
	if !ok {
		return ReplicaInfo{}, fmt.Errorf("%w: %s", ErrUnknownReplica, id)
	}
	info := w.info(r)
	info.ReservedBytes = held
	return info, nil
}

func (w *Worker) info(r *replica) ReplicaInfo {
	r.mu.Lock()
	info := ReplicaInfo{
		ID: r.id, Variant: r.variant.Name, Architecture: r.variant.Architecture, State: r.state,
		MaxBatch: r.maxBatch, QueueBound: r.bound, LoadedAt: r.loadedAt, LoadTime: r.loadTime,
	}
	queued, executing, loaded := r.queued, r.executing, r.sess != nil
	r.mu.Unlock()
	info.Stats = r.mon.Snapshot(queued, executing)
	info.Stats.Slowness = r.slowFactor()
	if loaded {
		info.Health = Assess(info.Stats, r.variant.Profile, info.MaxBatch, w.cfg.Thresholds)
	}
	return info
}

// checkHealth re-assesses every replica and logs flag changes.
func (w *Worker) checkHealth() {
	w.mu.Lock()
	rs := make([]*replica, 0, len(w.replicas))
	for _, r := range w.replicas {
		rs = append(rs, r)
	}
	w.mu.Unlock()
	for _, r := range rs {
		info := w.info(r)
		r.mu.Lock()
		prev := r.health
		r.health = info.Health
		r.mu.Unlock()
		if prev.Overloaded == info.Health.Overloaded && prev.Interfered == info.Health.Interfered {
			continue
		}
		if info.Health.Healthy() {
			w.log.Info("replica healthy again", "replica", r.id)
		} else {
			w.log.Warn("replica flagged", "replica", r.id, "overloaded", info.Health.Overloaded,
				"interfered", info.Health.Interfered, "reasons", strings.Join(info.Health.Reasons, "; "))
		}
	}
}
