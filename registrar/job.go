package registrar

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
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
}

type job struct {
	arch  catalog.Architecture
	set   *validation.Set
	model []byte

	mu      sync.Mutex
	st      Status
	started time.Time
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

	arch, variants, err := r.build(ctx, j)
	if err != nil {
		log.Error("registration failed", "err", err)
		r.cleanup(context.WithoutCancel(ctx), j.arch.Name)
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

// cleanup aborts a pending registration and removes the blobs it wrote.
func (r *Registrar) cleanup(ctx context.Context, name string) {
	if err := r.store.AbortRegistration(ctx, name); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		r.log.Error("abort registration", "architecture", name, "err", err)
	}
	if _, err := r.collectGarbage(ctx); err != nil {
		r.log.Error("collect garbage", "err", err)
	}
}

func (r *Registrar) build(ctx context.Context, j *job) (catalog.Architecture, []catalog.Variant, error) {
	arch := j.arch
	if err := r.store.BeginRegistration(ctx, arch); err != nil {
		return arch, nil, fmt.Errorf("begin: %w", err)
	}
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
	r.gcMu.RLock() // the graphs are unreferenced until the commit
	defer r.gcMu.RUnlock()
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
	if err := r.store.CommitRegistration(ctx, arch, useCaseOf(arch), variants); err != nil {
		return arch, nil, fmt.Errorf("commit: %w", err)
	}
	return arch, variants, nil
}
