package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/onnx"
	"github.com/infaas/infaas/profiler"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/validation"
)

// Config is the registrar's part of the server configuration.
type Config struct {
	// MaxModelBytes bounds an uploaded or fetched model file.
	MaxModelBytes int64
	// Hardware is the class variants are generated and profiled for.
	Hardware catalog.HardwareClass
	// Concurrency is how many registrations proceed at once (the profiler
	// still measures one variant at a time).
	Concurrency int
}

// DefaultConfig: 256 MiB models, this machine's CPU, two registrations at once.
func DefaultConfig() Config {
	return Config{MaxModelBytes: 256 << 20, Hardware: catalog.LocalCPU(), Concurrency: 2}
}

// Request is one registration.
type Request struct {
	Name    string
	Task    string
	Dataset string
	// Model is the ONNX file; or ModelURL names it in a bucket.
	Model    []byte
	ModelURL string
	// ValidationInputs and ValidationLabels are IDX files; without them
	// DeclaredAccuracy is required.
	ValidationInputs []byte
	ValidationLabels []byte
	DeclaredAccuracy *float64
	// InputScale is the declared preprocessing: model input = raw input × scale.
	// Zero means 1.
	InputScale float64
}

// Registrar registers architectures. Submit checks a request and queues
// it; Run does the work.
type Registrar struct {
	cfg   Config
	store metadata.Store
	repo  *repository.Repository
	prof  *profiler.Profiler
	log   *slog.Logger
	now   func() time.Time

	queue chan *job
	mu    sync.Mutex
	jobs  map[string]*job

	// gcMu keeps the garbage collector out while a registration writes
	// blobs that no record references yet (its variant graphs, just before
	// the commit that references them).
	gcMu sync.RWMutex

	// OnDelete, when set, runs after an architecture is deleted, so that
	// whoever serves queries forgets it and unloads its replicas.
	OnDelete func(ctx context.Context, name string)

	// OnCommit, when set, runs after each registration is committed and
	// before its status turns ready, so that whoever serves queries (the
	// controller's snapshot) knows the new model by then.
	OnCommit func(ctx context.Context)
}

// New returns a registrar; it starts nothing.
func New(cfg Config, store metadata.Store, repo *repository.Repository, prof *profiler.Profiler, log *slog.Logger) *Registrar {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	return &Registrar{
		cfg: cfg, store: store, repo: repo, prof: prof, log: log, now: time.Now,
		queue: make(chan *job, 64),
		jobs:  map[string]*job{},
	}
}

// Recover removes what interrupted registrations left: pending
// architectures and blobs no record references. Run calls it first.
func (r *Registrar) Recover(ctx context.Context) error {
	pending, err := r.store.Pending(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, a := range pending {
		r.log.Warn("removing interrupted registration", "architecture", a.Name)
		if err := r.store.AbortRegistration(ctx, a.Name); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("recover %s: %w", a.Name, err)
		}
	}
	n, err := r.collectGarbage(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if n > 0 {
		r.log.Warn("removed unreferenced blobs", "count", n)
	}
	return nil
}

// collectGarbage deletes blobs that no architecture or variant references.
// Blobs written by registrations in flight are referenced by their pending
// record's model digest, or are only written after profiling, so the
// collector runs when nothing is in flight or for one failed registration.
func (r *Registrar) collectGarbage(ctx context.Context) (int, error) {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	refs, err := r.store.Digests(ctx)
	if err != nil {
		return 0, err
	}
	all, err := r.repo.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range all {
		if _, ok := refs[d]; ok {
			continue
		}
		if err := r.repo.Delete(ctx, d); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Run recovers from interrupted registrations, then works the queue until
// ctx ends.
func (r *Registrar) Run(ctx context.Context) error {
	if err := r.Recover(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-r.queue:
					r.process(ctx, j)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// Status returns the state of the named registration: a job of this
// process, or else the stored architecture.
func (r *Registrar) Status(ctx context.Context, name string) (Status, error) {
	r.mu.Lock()
	j, ok := r.jobs[name]
	r.mu.Unlock()
	if ok {
		return j.status(), nil
	}
	a, err := r.store.Architecture(ctx, name)
	if errors.Is(err, metadata.ErrNotFound) {
		return Status{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return Status{}, err
	}
	st := Status{Name: name, State: StateReady, Phase: "registered", Done: 1, Total: 1}
	if a.State == catalog.StatePending {
		st = Status{Name: name, State: StateRunning, Phase: "registering (another process)"}
	}
	return st, nil
}

// Submit checks req and queues it. It returns the registration's status:
// already ready when an identical model is registered under that name.
func (r *Registrar) Submit(ctx context.Context, req Request) (Status, error) {
	arch, set, model, err := r.check(ctx, req)
	if err != nil {
		return Status{}, err
	}
	if existing, err := r.store.Architecture(ctx, req.Name); err == nil {
		if existing.ModelDigest == arch.ModelDigest && existing.State == catalog.StateReady {
			return Status{Name: req.Name, State: StateReady, Phase: "already registered with identical content", Done: 1, Total: 1}, nil
		}
		if existing.State == catalog.StatePending {
			return Status{}, fmt.Errorf("%w: %q is being registered right now; wait for it or pick another name", ErrExists, req.Name)
		}
		return Status{}, fmt.Errorf("%w: %q is registered with different content (%s); pick another name or delete it first",
			ErrExists, req.Name, existing.ModelDigest)
	} else if !errors.Is(err, metadata.ErrNotFound) {
		return Status{}, err
	}
	j := &job{arch: arch, set: set, model: model, st: Status{Name: req.Name, State: StateQueued, Phase: "queued"}}
	r.mu.Lock()
	if old, ok := r.jobs[req.Name]; ok && !old.finished() {
		r.mu.Unlock()
		return Status{}, fmt.Errorf("%w: %q is being registered right now; wait for it or pick another name", ErrExists, req.Name)
	}
	r.jobs[req.Name] = j
	r.mu.Unlock()
	select {
	case r.queue <- j:
	default:
		r.mu.Lock()
		delete(r.jobs, req.Name)
		r.mu.Unlock()
		return Status{}, fmt.Errorf("%w: too many registrations queued; try again when some have finished", ErrInvalid)
	}
	return j.status(), nil
}

// check validates a request completely before anything is stored.
func (r *Registrar) check(ctx context.Context, req Request) (catalog.Architecture, *validation.Set, []byte, error) {
	var zero catalog.Architecture
	for _, f := range []struct{ kind, v string }{{"name", req.Name}, {"task", req.Task}, {"dataset", req.Dataset}} {
		if err := catalog.ValidateName(f.kind, f.v); err != nil {
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if req.InputScale == 0 {
		req.InputScale = 1
	}
	if req.InputScale < 0 || math.IsNaN(req.InputScale) || math.IsInf(req.InputScale, 0) {
		return zero, nil, nil, fmt.Errorf("%w: input scale must be a positive number, got %v", ErrInvalid, req.InputScale)
	}
	hasVal := len(req.ValidationInputs) > 0 || len(req.ValidationLabels) > 0
	if hasVal && (len(req.ValidationInputs) == 0 || len(req.ValidationLabels) == 0) {
		return zero, nil, nil, fmt.Errorf("%w: validation data needs both inputs and labels", ErrInvalid)
	}
	if !hasVal && req.DeclaredAccuracy == nil {
		return zero, nil, nil, fmt.Errorf("%w: give validation data (inputs and labels) so accuracy can be measured, or declare an accuracy", ErrInvalid)
	}
	if a := req.DeclaredAccuracy; a != nil && (*a < 0 || *a > 100 || math.IsNaN(*a)) {
		return zero, nil, nil, fmt.Errorf("%w: accuracy is a percentage between 0 and 100, got %v", ErrInvalid, *a)
	}

	model := req.Model
	switch {
	case len(model) > 0 && req.ModelURL != "":
		return zero, nil, nil, fmt.Errorf("%w: give the model as a file or as a URL, not both", ErrInvalid)
	case req.ModelURL != "":
		b, err := repository.Fetch(ctx, req.ModelURL, r.cfg.MaxModelBytes)
		switch {
		case errors.Is(err, repository.ErrTooLarge):
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrTooLarge, err)
		case err != nil:
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		model = b
	case len(model) == 0:
		return zero, nil, nil, fmt.Errorf("%w: no model file given", ErrInvalid)
	}
	if int64(len(model)) > r.cfg.MaxModelBytes {
		return zero, nil, nil, fmt.Errorf("%w: the model is %d bytes; this server accepts at most %d (see --max-upload)", ErrTooLarge, len(model), r.cfg.MaxModelBytes)
	}
	if _, err := onnx.Parse(model); err != nil {
		return zero, nil, nil, fmt.Errorf("%w; upload an ONNX file (for example from torch.onnx.export or tf2onnx)", err)
	}

	// Let ONNX Runtime load it, in a child process.
	wd, err := profiler.NewWorkdir()
	if err != nil {
		return zero, nil, nil, err
	}
	defer wd.Close()
	path, err := wd.Write("model.onnx", model)
	if err != nil {
		return zero, nil, nil, err
	}
	res, err := r.prof.Run(ctx, profiler.Job{Kind: profiler.KindInspect, ModelPath: path})
	if err != nil {
		return zero, nil, nil, fmt.Errorf("%w: ONNX Runtime cannot load it: %v", ErrRejected, err)
	}
	io := res.IO
	if len(io.Input.Shape) < 1 {
		return zero, nil, nil, fmt.Errorf("%w: the input %q has no batch dimension", ErrRejected, io.Input.Name)
	}
	if io.Input.SampleElements() < 0 {
		return zero, nil, nil, fmt.Errorf("%w: the input %q has shape %v; infaas needs every dimension but the first (batch) fixed",
			ErrRejected, io.Input.Name, io.Input.Shape)
	}

	arch := catalog.Architecture{
		Name: req.Name, Task: req.Task, Dataset: req.Dataset, State: catalog.StatePending,
		ModelDigest: repository.Digest(model), ModelBytes: int64(len(model)),
		Input: io.Input, Output: io.Output, InputScale: req.InputScale,
		DynamicBatch: io.Input.Shape[0] < 0,
		RegisteredAt: r.now().UTC(),
	}
	uc := useCaseOf(arch)
	if stored, err := r.store.UseCase(ctx, uc.ID()); err == nil {
		if err := metadata.CheckInputContract(stored, uc); err != nil {
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrContract, err)
		}
	} else if !errors.Is(err, metadata.ErrNotFound) {
		return zero, nil, nil, err
	}

	var set *validation.Set
	if hasVal {
		set, err = validation.Load(req.ValidationInputs, req.ValidationLabels)
		if err != nil {
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrValidation, err)
		}
		if err := set.Check(io.Input, io.Output); err != nil {
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrValidation, err)
		}
		arch.AccuracySource = catalog.AccuracyMeasured
		arch.ValidationSamples = set.N
	} else {
		arch.Accuracy = *req.DeclaredAccuracy
		arch.AccuracySource = catalog.AccuracyDeclared
	}
	return arch, set, model, nil
}

// useCaseOf derives the use case an architecture belongs to.
func useCaseOf(a catalog.Architecture) catalog.UseCase {
	in := a.Input
	in.Name = "input"
	in.Shape = append([]int64{-1}, a.Input.SampleShape()...)
	return catalog.UseCase{Task: a.Task, Dataset: a.Dataset, Input: in, Classes: validation.Classes(a.Output)}
}

// Delete removes a ready architecture, its variants and every blob only
// they referenced.
func (r *Registrar) Delete(ctx context.Context, name string) error {
	if err := r.store.DeleteArchitecture(ctx, name); err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	r.mu.Lock()
	delete(r.jobs, name)
	r.mu.Unlock()
	if r.OnDelete != nil {
		r.OnDelete(ctx, name)
	}
	if _, err := r.collectGarbage(ctx); err != nil {
		return fmt.Errorf("delete %s: collect blobs: %w", name, err)
	}
	r.log.Info("deleted", "architecture", name)
	return nil
}

// Jobs lists the registrations this process knows, by name.
func (r *Registrar) Jobs() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.jobs))
	for _, j := range r.jobs {
		out = append(out, j.status())
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Name < out[k].Name })
	return out
}
