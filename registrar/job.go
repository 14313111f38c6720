package registrar

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/validation"
)

// Registration states.
const (
	StateQueued  = "queued"
	StateRunning = "running"
	StateReady   = "ready"
	StateFailed  = "failed"
)

// Status is a registration's progress.
type Status struct {
	Name     string        `json:"name"`
	State    string        `json:"state"`
	Phase    string        `json:"phase"`
	Done     int           `json:"done"`
	Total    int           `json:"total"`
	Error    string        `json:"error,omitempty"`
	Variants int           `json:"variants,omitempty"`
	Dropped  int           `json:"dropped,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns,omitempty"`
	// Reused counts the profiles the profile cache answered: the same
	// graph timed the same way on this machine before (Request.Reprofile
	// measures afresh).
	Reused int `json:"reused_profiles,omitempty"`
}

type job struct {
	arch  catalog.Architecture
	set   *validation.Set
	model []byte
	// reprofile: measure every variant afresh (Request.Reprofile).
	reprofile bool

	mu      sync.Mutex
	st      Status
	started time.Time
	// begun: the pending record exists (touched only by the goroutine
	// running process).
	begun bool
}

func (j *job) status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := j.st
	if !j.started.IsZero() && (st.State == StateRunning) {
		st.Elapsed = time.Since(j.started)
	}
	return st
}

func (j *job) finished() bool {
	s := j.status().State
	return s == StateReady || s == StateFailed
}

func (j *job) update(f func(*Status)) {
	j.mu.Lock()
	f(&j.st)
	j.mu.Unlock()
}

// process runs one registration to the end, cleaning up on failure.
func (r *Registrar) process(ctx context.Context, j *job) {
	start := time.Now()
	j.mu.Lock()
	j.started = start
	j.st.State, j.st.Phase = StateRunning, "starting"
	j.mu.Unlock()
	log := r.log.With("architecture", j.arch.Name)

	// jctx ends early if the registration's lease is lost.
	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var arch catalog.Architecture
	var variants []catalog.Variant
	err := r.contain("registration", func() (err error) {
		arch, variants, err = r.build(jctx, j, cancel)
		return err
	})
	if err != nil {
		if cause := context.Cause(jctx); ctx.Err() == nil && cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%v)", cause, err)
		}
		log.Error("registration failed", "err", err)
		if j.begun {
			r.cleanup(context.WithoutCancel(ctx), j.arch.Name)
		}
		j.update(func(s *Status) {
			s.State, s.Phase, s.Error, s.Elapsed = StateFailed, "failed", err.Error(), time.Since(start)
		})
		return
	}
	if r.OnCommit != nil {
		r.OnCommit(ctx)
	}
	log.Info("registered", "variants", len(variants), "dropped", len(arch.Dropped), "elapsed", time.Since(start).Round(time.Millisecond))
	j.update(func(s *Status) {
		s.State, s.Phase, s.Done = StateReady, "registered", s.Total
		s.Variants, s.Dropped, s.Elapsed = len(variants), len(arch.Dropped), time.Since(start)
	})
	j.model, j.set = nil, nil
}

// cleanup aborts a pending registration of this registrar and removes the
// blobs only it referenced. A registration another process has taken over
// (after this one's lease expired and was aborted) is left alone.
func (r *Registrar) cleanup(ctx context.Context, name string) {
	err := r.store.AbortRegistration(ctx, name, r.cfg.Owner)
	switch {
	case err == nil, errors.Is(err, metadata.ErrNotFound):
	case errors.Is(err, metadata.ErrConflict):
		r.log.Warn("not aborting a registration this registrar no longer holds", "architecture", name, "err", err)
	default:
		r.log.Error("abort registration; it will be removed once its lease expires", "architecture", name, "err", err)
	}
	if _, err := r.collectGarbage(ctx); err != nil {
		r.log.Error("collect garbage", "err", err)
	}
}

// errLeaseLost: the registration's pending record was aborted by another
// process (its lease had expired) or is held by another owner.
var errLeaseLost = errors.New("lost the registration's lease")

// keepLease renews the lease of registration name on every renewTicks tick
// until the returned stop is called. When the store says the registration
// is gone or held by another owner it cancels the job with errLeaseLost;
// other failures (the store unreachable for a moment) are logged and
// retried at the next tick, while the lease still runs.
func (r *Registrar) keepLease(ctx context.Context, name string, cancel context.CancelCauseFunc) (stop func()) {
	ticks, stopTicks := r.renewTicks()
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer stopTicks()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-ticks:
			}
			err := r.store.RenewLease(ctx, name, r.cfg.Owner, r.cfg.LeaseTTL)
			switch {
			case err == nil:
			case errors.Is(err, metadata.ErrNotFound), errors.Is(err, metadata.ErrConflict):
				cancel(fmt.Errorf("%w: %w", errLeaseLost, err))
				return
			case ctx.Err() == nil:
				r.log.Warn("renew registration lease", "architecture", name, "err", err)
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(quit)
		<-done
	})
}

func (r *Registrar) build(ctx context.Context, j *job, cancel context.CancelCauseFunc) (catalog.Architecture, []catalog.Variant, error) {
	arch := j.arch
	// The pending record references the model's digest before the model
	// is written.
	if err := r.store.BeginRegistration(ctx, arch, r.cfg.Owner, r.cfg.LeaseTTL); err != nil {
		return arch, nil, fmt.Errorf("begin: %w", err)
	}
	j.begun = true
	stop := r.keepLease(ctx, arch.Name, cancel)
	defer stop()
	j.update(func(s *Status) { s.Phase = "storing model" })
	if _, err := r.repo.Put(ctx, j.model); err != nil {
		return arch, nil, fmt.Errorf("store model: %w", err)
	}
	gen := generator{r: r, job: j}
	variants, blobs, dropped, accuracy, err := gen.run(ctx)
	if err != nil {
		return arch, nil, err
	}
	j.update(func(s *Status) { s.Phase = "storing variants" })
	digests := make([]string, len(blobs))
	for i, b := range blobs {
		digests[i] = repository.Digest(b)
	}
	// Referenced first, so that no collector deletes a graph between its
	// write and the commit.
	if err := r.store.AddPendingDigests(ctx, arch.Name, r.cfg.Owner, digests...); err != nil {
		return arch, nil, fmt.Errorf("reference variant graphs: %w", err)
	}
	for _, b := range blobs {
		if _, err := r.repo.Put(ctx, b); err != nil {
			return arch, nil, fmt.Errorf("store variant graph: %w", err)
		}
	}
	arch.State = catalog.StateReady
	arch.Dropped = dropped
	if arch.AccuracySource == catalog.AccuracyMeasured {
		arch.Accuracy = accuracy
	}
	j.update(func(s *Status) { s.Phase = "committing" })
	// Another tenant may have joined the use case while this one was
	// profiled: the sharing rule holds at commit, not only at submit.
	if err := r.checkSharing(ctx, arch); err != nil {
		return arch, nil, err
	}
	if err := r.store.CommitRegistration(ctx, arch, r.cfg.Owner, catalog.UseCaseOf(arch), variants); err != nil {
		return arch, nil, fmt.Errorf("commit: %w", err)
	}
	return arch, variants, nil
}
