package registrar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
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
	// MaxFidelityLoss is how many accuracy points an int8 variant may
	// lose against the fp32 graph (measured on validation data, else its
	// fidelity's Loss) and still be kept; 0 means DefaultMaxFidelityLoss.
	MaxFidelityLoss float64
	// FileRoots are the directories a model_url of file:// may name (none:
	// file:// URLs are refused; see repository.Fetch).
	FileRoots []string
	// Hardware is the class variants are generated and profiled for.
	Hardware catalog.HardwareClass
	// Concurrency is how many registrations proceed at once (the profiler
	// still measures one variant at a time).
	Concurrency int
	// Owner names this registrar in the leases of its registrations. It
	// must be unique among the processes sharing the metadata store; empty
	// means a fresh ID per process (hostname-pid-random). A stable Owner
	// lets a restarted process abort its previous run's registrations at
	// once instead of waiting for their leases to expire.
	Owner string
	// LeaseTTL is how long a registration stays protected from other
	// processes' recovery without being renewed: a process that dies
	// leaves its registrations to whichever registrar next finds the
	// lease expired. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// RenewEvery is how often a registration in progress renews its lease.
	// Zero, or not less than LeaseTTL, means a third of LeaseTTL.
	RenewEvery time.Duration
	// GCGrace is how long a blob must have been seen unreferenced before
	// the collector deletes it: the time an operator has to notice that
	// the metadata store lost records it held (a stale snapshot restored,
	// a failover to a lagging replica — same store, so the identity check
	// passes) and put them back before their model files go. The clock
	// starts when this process first finds the blob unreferenced and
	// starts again with the process. Zero deletes at once.
	GCGrace time.Duration
}

// Lease defaults: a registration is renewed every 10 s and given up by
// other processes 30 s after its last renewal.
const (
	DefaultLeaseTTL   = 30 * time.Second
	DefaultRenewEvery = 10 * time.Second
)

// DefaultGCGrace is DefaultConfig's GCGrace.
const DefaultGCGrace = 10 * time.Minute

// DefaultConfig: 256 MiB models, this machine's CPU, two registrations at
// once, a per-process owner ID, 30 s leases renewed every 10 s, blobs
// deleted 10 minutes after they were found unreferenced.
func DefaultConfig() Config {
	return Config{MaxModelBytes: 256 << 20, Hardware: catalog.LocalCPU(), Concurrency: 2,
		LeaseTTL: DefaultLeaseTTL, RenewEvery: DefaultRenewEvery, GCGrace: DefaultGCGrace}
}

// DefaultMaxFidelityLoss is Config.MaxFidelityLoss's default, in
// accuracy points.
const DefaultMaxFidelityLoss = 1.0

// NewOwnerID returns an owner ID unique to this process: hostname, process
// ID and a random suffix (process IDs repeat across containers).
func NewOwnerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
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
	// InputScale is the declared preprocessing: model input = raw input × scale,
	// within [minInputScale, maxInputScale].
	// Zero means 1.
	InputScale float64
	// Overrides adjust what infaas reads from the model, without editing it.
	Overrides Overrides
	// Owner is the registering tenant (with --auth); the architecture
	// belongs to it.
	Owner string
	// Reprofile measures every variant afresh even when the profiler's
	// cache holds the same graph's profile from an earlier registration
	// on this machine (and replaces it there).
	Reprofile bool
}

// Overrides are a registration's optional corrections to the tensor
// contract read from the model, given as JSON (the "config" field of the
// upload, `infaas register --config FILE`).
type Overrides struct {
	// Batch is "auto" (default: dimension 0 is the batch when every
	// input and output has it dynamic, see catalog.DetectBatch) or "none"
	// (serve one request at a time, each with its whole shape).
	Batch string `json:"batch,omitempty"`
	// Shapes pins dynamic dimensions, per input name: the input's whole
	// shape with -1 where it stays dynamic (the batch dimension included).
	Shapes map[string][]int64 `json:"shapes,omitempty"`
	// ProfileShapes gives, per input name, the shape without the batch
	// dimension that profiling and the fidelity check use for dimensions
	// left dynamic (default catalog.DefaultDynamicDim each).
	ProfileShapes map[string][]int64 `json:"profile_shapes,omitempty"`
	// Labels name the classes of the first output (class scores [batch,
	// classes]), for the classification extension.
	Labels []string `json:"labels,omitempty"`
}

// The input scale's range: wide enough for any unit change (bytes to
// 0–1 is 1/255), narrow enough that a float32 input stays finite and
// non-zero.
const (
	minInputScale = 1e-6
	maxInputScale = 1e6
)

// Registrar registers architectures. Submit checks a request and queues
// it; Run does the work.
//
// Several registrars (one per controller process) may share a metadata
// store and a blob repository. Each registration is a pending record held
// under this registrar's lease, renewed while it runs; every blob it writes
// is referenced by that record before it is written; and garbage is
// collected under the store's blob lock. So a registrar never removes
// another's registration in flight nor the blobs it is writing, and a
// registrar that dies leaves its registrations to the others once their
// leases expire.
type Registrar struct {
	cfg   Config
	store metadata.Store
	repo  *repository.Repository
	prof  *profiler.Profiler
	log   *slog.Logger
	now   func() time.Time
	// renewTicks returns the ticks on which a running registration renews
	// its lease, and a function that stops them (a time.Ticker by default;
	// tests drive it by hand).
	renewTicks func() (<-chan time.Time, func())

	queue chan *job
	mu    sync.Mutex
	jobs  map[string]*job
	// unreferenced: blob digest → when the collector first found no
	// record referencing it (Config.GCGrace); guarded by mu.
	unreferenced map[string]time.Time

	// OnDelete, when set, runs after an architecture is deleted, so that
	// whoever serves queries forgets it and unloads its replicas.
	OnDelete func(ctx context.Context, name string)

	// OnCommit, when set, runs after each registration is committed and
	// before its status turns ready, so that whoever serves queries (the
	// controller's snapshot) knows the new model by then. Other processes
	// sharing the store learn of it from Store.Changes.
	OnCommit func(ctx context.Context)
}

// New returns a registrar; it starts nothing. Zero Config fields take
// their defaults (see Config).
func New(cfg Config, store metadata.Store, repo *repository.Repository, prof *profiler.Profiler, log *slog.Logger) *Registrar {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Owner == "" {
		cfg.Owner = NewOwnerID()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.RenewEvery <= 0 || cfg.RenewEvery >= cfg.LeaseTTL {
		cfg.RenewEvery = cfg.LeaseTTL / 3
	}
	r := &Registrar{
		cfg: cfg, store: store, repo: repo, prof: prof, log: log, now: time.Now,
		queue: make(chan *job, 64),
		jobs:  map[string]*job{},

		unreferenced: map[string]time.Time{},
	}
	r.renewTicks = func() (<-chan time.Time, func()) {
		t := time.NewTicker(r.cfg.RenewEvery)
		return t.C, t.Stop
	}
	return r
}

// Owner is the ID this registrar holds its registrations' leases under.
func (r *Registrar) Owner() string { return r.cfg.Owner }

// Recover removes what interrupted registrations left: pending
// registrations whose lease has expired, whoever owned them, and those held
// under this registrar's own owner ID that are not among its running jobs
// (a previous run under the same stable Config.Owner); then blobs no record
// references. Registrations that other live processes hold are left alone.
// Run calls it first, and keeps removing expired registrations every
// LeaseTTL while it runs.
func (r *Registrar) Recover(ctx context.Context) error {
	n, err := r.reap(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if n > 0 {
		r.log.Warn("removed interrupted registrations", "count", n)
	}
	blobs, err := r.collectGarbage(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if blobs > 0 {
		r.log.Warn("removed unreferenced blobs", "count", blobs)
	}
	return nil
}

// reap aborts the pending registrations Recover removes and returns how
// many it aborted. The store decides expiry by its own clock and refuses
// the abort if the owner renewed the lease meanwhile.
func (r *Registrar) reap(ctx context.Context) (int, error) {
	pending, err := r.store.Pending(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pending {
		name := p.Architecture.Name
		mine := p.Owner == r.cfg.Owner
		if (!p.Expired && !mine) || (mine && r.running(name)) {
			continue
		}
		err := r.store.AbortRegistration(ctx, name, r.cfg.Owner)
		switch {
		case errors.Is(err, metadata.ErrNotFound), errors.Is(err, metadata.ErrConflict):
			continue // committed, aborted or renewed meanwhile
		case err != nil:
			return n, fmt.Errorf("abort %s: %w", name, err)
		}
		r.log.Warn("removed interrupted registration", "architecture", name, "owner", p.Owner, "lease_until", p.LeaseUntil)
		n++
	}
	return n, nil
}

// running reports whether a job of this registrar for name has not finished.
func (r *Registrar) running(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[name]
	return ok && !j.finished()
}

// collectGarbage deletes blobs that no record references and that have
// gone unreferenced for Config.GCGrace, holding the store's blob lock from
// reading the references until the last delete, so that no registration
// (of any process) can reference a blob in between: registrations
// reference each blob before writing it, and those writes wait for the
// lock. It returns how many it deleted.
func (r *Registrar) collectGarbage(ctx context.Context) (int, error) {
	held, release, err := r.store.LockBlobs(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	refs, err := r.store.Digests(held)
	if err != nil {
		return 0, err
	}
	all, err := r.repo.List(held)
	if err != nil {
		return 0, err
	}
	if ok, err := r.sameStore(held, refs, all); err != nil || !ok {
		return 0, err
	}
	garbage, waiting, next := r.graced(refs, all)
	if waiting > 0 {
		r.log.Info("unreferenced blobs kept for the collection grace period", "count", waiting,
			"grace", r.cfg.GCGrace, "next_deletable_at", next.Format(time.RFC3339))
	}
	n := 0
	for _, d := range garbage {
		if held.Err() != nil {
			return n, fmt.Errorf("collect garbage: %w", context.Cause(held))
		}
		if err := r.repo.Delete(held, d); err != nil {
			return n, err
		}
		r.mu.Lock()
		delete(r.unreferenced, d)
		r.mu.Unlock()
		n++
	}
	return n, nil
}

// graced splits the blobs no record references into those unreferenced
// for the grace period (garbage) and those still within it (how many, and
// when the first of them is due). A blob referenced again, or gone, is
// forgotten: its clock starts afresh if it turns unreferenced later.
func (r *Registrar) graced(refs map[string]struct{}, all []string) (garbage []string, waiting int, next time.Time) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	listed := make(map[string]struct{}, len(all))
	for _, d := range all {
		listed[d] = struct{}{}
		if _, ok := refs[d]; ok {
			delete(r.unreferenced, d)
			continue
		}
		since, ok := r.unreferenced[d]
		if !ok {
			since = now
			r.unreferenced[d] = now
		}
		due := since.Add(r.cfg.GCGrace)
		if !now.Before(due) {
			garbage = append(garbage, d)
			continue
		}
		if waiting == 0 || due.Before(next) {
			next = due
		}
		waiting++
	}
	for d := range r.unreferenced {
		if _, ok := listed[d]; !ok {
			delete(r.unreferenced, d)
		}
	}
	return garbage, waiting, next
}

// sweepEvery is how often Run looks for expired leases and blobs whose
// grace period ended: every LeaseTTL, or every half grace period when
// that is shorter (at least every 100 ms), so a blob goes within half a
// grace period of its due time.
func (r *Registrar) sweepEvery() time.Duration {
	if g := r.cfg.GCGrace / 2; g > 0 && g < r.cfg.LeaseTTL {
		return max(g, 100*time.Millisecond)
	}
	return r.cfg.LeaseTTL
}

// collectionDue says whether a blob's grace period has ended, so that the
// periodic sweep collects it without waiting for the next deletion.
func (r *Registrar) collectionDue() bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, since := range r.unreferenced {
		if !now.Before(since.Add(r.cfg.GCGrace)) {
			return true
		}
	}
	return false
}

// sameStore decides whether the collector may trust the metadata store
// with these blobs: only when the store is the one that wrote them. The
// repository records the store's identity beside the blobs; a store that
// was emptied (Redis restarted without persistence) or replaced has
// another identity, and then nothing is collected — an empty store would
// otherwise make every model file look like garbage. A repository with no
// identity yet adopts the store, unless the store references nothing
// while the repository holds blobs (the same danger, first time round).
func (r *Registrar) sameStore(ctx context.Context, refs map[string]struct{}, blobs []string) (bool, error) {
	id, err := r.store.Identity(ctx)
	if err != nil {
		return false, err
	}
	bound, err := r.repo.StoreIdentity(ctx)
	if err != nil {
		return false, err
	}
	switch {
	case bound == id:
		return true, nil
	case bound != "":
		r.log.Error("not collecting garbage: the model repository belongs to another metadata store (was Redis restarted empty, or does --store point elsewhere?); "+
			"no blob is deleted. If this store is the right one, remove the repository's identity object to let it adopt the blobs",
			"store_identity", id, "repository_store_identity", bound, "identity_object", r.repo.StoreIdentityObject(), "blobs", len(blobs))
		return false, nil
	case len(refs) == 0 && len(blobs) > 0:
		r.log.Error("not collecting garbage: the metadata store references no blob but the model repository holds some, and records no store; "+
			"no blob is deleted. If those blobs are garbage, delete them by hand",
			"store_identity", id, "blobs", len(blobs))
		return false, nil
	}
	if err := r.repo.SetStoreIdentity(ctx, id); err != nil {
		return false, err
	}
	r.log.Info("the model repository now belongs to this metadata store", "store_identity", id)
	return true, nil
}

// Run recovers from interrupted registrations, then works the queue until
// ctx ends, removing registrations whose leases expire (their owners died)
// every LeaseTTL, and the blobs of such registrations and others no record
// references once their grace period ends (sweepEvery).
func (r *Registrar) Run(ctx context.Context) error {
	if err := r.Recover(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Concurrency; i++ {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-r.queue:
					r.process(ctx, j)
				}
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(r.sweepEvery())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := r.reap(ctx)
			if err != nil {
				r.log.Warn("removing expired registrations", "err", err)
			}
			if n == 0 && !r.collectionDue() {
				continue
			}
			if _, err := r.collectGarbage(ctx); err != nil {
				r.log.Warn("collect garbage", "err", err)
			}
		}
	})
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
		switch {
		case existing.State == catalog.StatePending:
			freed, err := r.abortAbandoned(ctx, req.Name)
			if err != nil {
				return Status{}, err
			}
			if !freed {
				return Status{}, fmt.Errorf("%w: %q is being registered right now; wait for it or pick another name", ErrExists, req.Name)
			}
		case existing.ModelDigest == arch.ModelDigest:
			return Status{Name: req.Name, State: StateReady, Phase: "already registered with identical content", Done: 1, Total: 1}, nil
		default:
			return Status{}, fmt.Errorf("%w: %q is registered with different content (%s); pick another name or delete it first",
				ErrExists, req.Name, existing.ModelDigest)
		}
	} else if !errors.Is(err, metadata.ErrNotFound) {
		return Status{}, err
	}
	j := &job{arch: arch, set: set, model: model, reprofile: req.Reprofile, st: Status{Name: req.Name, State: StateQueued, Phase: "queued"}}
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

// abortAbandoned aborts the pending registration name if nobody is working
// on it any more (its lease has expired, or this registrar's owner ID holds
// it without a running job) and reports whether the name is free. Its
// blobs go with the next garbage collection.
func (r *Registrar) abortAbandoned(ctx context.Context, name string) (bool, error) {
	if r.running(name) {
		return false, nil
	}
	err := r.store.AbortRegistration(ctx, name, r.cfg.Owner)
	switch {
	case err == nil:
		r.log.Warn("removed interrupted registration to register the name again", "architecture", name)
		return true, nil
	case errors.Is(err, metadata.ErrNotFound):
		return true, nil
	case errors.Is(err, metadata.ErrConflict):
		return false, nil // held by a live process, or committed meanwhile
	}
	return false, err
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
	if req.InputScale < minInputScale || req.InputScale > maxInputScale || math.IsNaN(req.InputScale) {
		return zero, nil, nil, fmt.Errorf("%w: input scale must be between %g and %g (model input = raw input × scale; 1/255 turns bytes into 0–1), got %v",
			ErrInvalid, minInputScale, maxInputScale, req.InputScale)
	}
	hasVal := len(req.ValidationInputs) > 0 || len(req.ValidationLabels) > 0
	if hasVal && (len(req.ValidationInputs) == 0 || len(req.ValidationLabels) == 0) {
		return zero, nil, nil, fmt.Errorf("%w: validation data needs both inputs and labels", ErrInvalid)
	}
	if a := req.DeclaredAccuracy; a != nil && (*a < 0 || *a > 100 || math.IsNaN(*a)) {
		return zero, nil, nil, fmt.Errorf("%w: accuracy is a percentage between 0 and 100, got %v", ErrInvalid, *a)
	}

	model := req.Model
	switch {
	case len(model) > 0 && req.ModelURL != "":
		return zero, nil, nil, fmt.Errorf("%w: give the model as a file or as a URL, not both", ErrInvalid)
	case req.ModelURL != "":
		b, err := repository.Fetch(ctx, req.ModelURL, r.cfg.MaxModelBytes, r.cfg.FileRoots)
		switch {
		case errors.Is(err, repository.ErrForbidden):
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
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
	if err := r.contain("parsing the ONNX file", func() error { _, err := onnx.Parse(model); return err }); err != nil {
		if errors.Is(err, ErrRejected) {
			return zero, nil, nil, err
		}
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
		if strings.Contains(err.Error(), executor.ErrUnsupported.Error()) {
			// infaas's own rule, not ONNX Runtime's: say so.
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrRejected, err)
		}
		return zero, nil, nil, fmt.Errorf("%w: ONNX Runtime cannot load it: %v", ErrRejected, err)
	}
	contract, err := applyOverrides(res.IO, req.Overrides)
	if err != nil {
		return zero, nil, nil, err
	}
	if req.InputScale != 1 && contract.Inputs[0].DataType != "FP32" {
		return zero, nil, nil, fmt.Errorf("%w: input_scale multiplies the first input, %s, which is not FP32; leave input_scale out", ErrInvalid, contract.Describe(contract.Inputs[0]))
	}

	arch := catalog.Architecture{
		Name: req.Name, Owner: req.Owner, Task: req.Task, Dataset: req.Dataset, State: catalog.StatePending,
		ModelDigest: repository.Digest(model), ModelBytes: int64(len(model)),
		Contract: contract, InputScale: req.InputScale,
		DynamicBatch:  contract.Batched && contract.FixedBatch() == 0,
		ProfileShapes: req.Overrides.ProfileShapes,
		Labels:        req.Overrides.Labels,
		RegisteredAt:  r.now().UTC(),
	}
	if err := checkProfileShapes(arch); err != nil {
		return zero, nil, nil, err
	}
	if n := len(arch.Labels); n > 0 && n != contract.Classes() {
		return zero, nil, nil, fmt.Errorf("%w: %d labels given but the first output %s has %d classes; give one label per class",
			ErrInvalid, n, contract.Describe(contract.Outputs[0]), contract.Classes())
	}
	uc := catalog.UseCaseOf(arch)
	if stored, err := r.store.UseCase(ctx, uc.ID()); err == nil {
		if err := metadata.CheckInputContract(stored, uc); err != nil {
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrContract, err)
		}
		// Names may differ: queries to the use case use its names, and
		// this architecture gets the tensors by position. Say so.
		arch.UseCaseMapping = stored.Renamed(arch.Contract)
	} else if errors.Is(err, metadata.ErrNotFound) {
		arch.UseCaseMapping = uc.Renamed(arch.Contract)
	} else {
		return zero, nil, nil, err
	}

	var set *validation.Set
	if hasVal {
		set, err = validation.Load(req.ValidationInputs, req.ValidationLabels)
		if err != nil {
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrValidation, err)
		}
		if err := set.Check(arch.Contract); err != nil {
			return zero, nil, nil, fmt.Errorf("%w: %v", ErrValidation, err)
		}
		arch.AccuracySource = catalog.AccuracyMeasured
		arch.ValidationSamples = set.N
	} else if req.DeclaredAccuracy != nil {
		arch.Accuracy = *req.DeclaredAccuracy
		arch.AccuracySource = catalog.AccuracyDeclared
	} else {
		arch.AccuracySource = catalog.AccuracyUnknown
	}
	if err := r.checkSharing(ctx, arch); err != nil {
		return zero, nil, nil, err
	}
	return arch, set, model, nil
}

// checkSharing keeps a use case shared between tenants honest: its
// queries go to whichever architecture is best by accuracy, so a tenant's
// declared (unverified) accuracy must not decide another tenant's
// answers. An architecture joins a use case holding another tenant's
// architectures only if its accuracy is measured and theirs are too.
// Without --auth every architecture has the same (empty) owner.
func (r *Registrar) checkSharing(ctx context.Context, arch catalog.Architecture) error {
	archs, err := r.store.Architectures(ctx)
	if err != nil {
		return err
	}
	for _, o := range archs {
		if o.UseCaseID() != arch.UseCaseID() || o.Owner == arch.Owner || o.Name == arch.Name {
			continue
		}
		switch {
		case arch.AccuracySource != catalog.AccuracyMeasured:
			return fmt.Errorf("%w: use case %s also serves tenant %q (%s); only an architecture whose accuracy is measured (give validation data) may join a use case shared between tenants, or register under another dataset name",
				ErrForbidden, arch.UseCaseID(), o.Owner, o.Name)
		case o.AccuracySource != catalog.AccuracyMeasured:
			return fmt.Errorf("%w: use case %s holds tenant %q's %s, whose accuracy is %s, not measured; it cannot be shared with another tenant — register under another dataset name",
				ErrForbidden, arch.UseCaseID(), o.Owner, o.Name, o.AccuracySource)
		}
	}
	return nil
}

// applyOverrides applies a registration's overrides to the contract the
// model states, refusing what cannot hold.
func applyOverrides(c catalog.Contract, o Overrides) (catalog.Contract, error) {
	switch o.Batch {
	case "", "auto":
	case "none":
		c.Batched = false
	default:
		return c, fmt.Errorf("%w: batch must be \"auto\" or \"none\", got %q", ErrInvalid, o.Batch)
	}
	c.Inputs = slices.Clone(c.Inputs)
	for name, pin := range o.Shapes {
		i := c.InputIndex(name)
		if i < 0 {
			return c, fmt.Errorf("%w: shapes names input %q; the model's inputs are %s", ErrInvalid, name, catalog.Names(c.Inputs))
		}
		t := c.Inputs[i]
		if len(pin) != len(t.Shape) {
			return c, fmt.Errorf("%w: shapes gives %q %d dimensions %v; the model's %s has %d", ErrInvalid, name, len(pin), pin, c.Describe(t), len(t.Shape))
		}
		shape := slices.Clone(t.Shape)
		for k, d := range pin {
			switch {
			case d < -1 || d == 0:
				return c, fmt.Errorf("%w: shapes for %q: dimension %d is %d; give a size ≥ 1 or -1 to leave it dynamic", ErrInvalid, name, k, d)
			case d > 0 && t.Shape[k] >= 0 && d != t.Shape[k]:
				return c, fmt.Errorf("%w: shapes for %q: dimension %d is fixed at %d in the model, not %d", ErrInvalid, name, k, t.Shape[k], d)
			case d > 0 && k == 0 && c.Batched:
				return c, fmt.Errorf("%w: shapes for %q pins the batch dimension; leave it -1 (or declare \"batch\": \"none\")", ErrInvalid, name)
			case d > 0:
				shape[k] = d
			}
		}
		t.Shape = shape
		c.Inputs[i] = t
	}
	return c, nil
}

// checkProfileShapes checks the profile shapes against the contract.
func checkProfileShapes(a catalog.Architecture) error {
	for name, s := range a.ProfileShapes {
		i := a.InputIndex(name)
		if i < 0 {
			return fmt.Errorf("%w: profile_shapes names input %q; the model's inputs are %s", ErrInvalid, name, catalog.Names(a.Inputs))
		}
		t := a.Inputs[i]
		sample := a.Sample(t)
		if len(s) != len(sample) {
			return fmt.Errorf("%w: profile_shapes gives %q %d dimensions; without the batch dimension %s has %d", ErrInvalid, name, len(s), a.Describe(t), len(sample))
		}
		for k, d := range s {
			if d < 1 || d > 1<<20 || (sample[k] >= 0 && d != sample[k]) {
				return fmt.Errorf("%w: profile_shapes for %q: dimension %d is %d; it must be ≥ 1 and match the model's fixed sizes %v", ErrInvalid, name, k, d, sample)
			}
		}
	}
	return nil
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
