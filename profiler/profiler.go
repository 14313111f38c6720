package profiler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrChild is returned when a child process fails to answer (crash, kill,
// timeout) — as opposed to answering with an error about the model.
var ErrChild = errors.New("profiler child failed")

// Config sets the measurement budget.
type Config struct {
	Warmup   int           // runs before timing, per batch size
	MinIters int           // timed runs at least, per batch size
	MaxIters int           // timed runs at most, per batch size
	PerBatch time.Duration // the base time per batch size; see Job.Budget
	Timeout  time.Duration // a child taking longer is killed
	// CacheDir, when set, keeps every profile job's result there, keyed
	// by what it measured (cacheKey: the bytes of the graph, reference
	// and inputs, the budget, ONNX Runtime's version, the machine), and
	// answers a job with the same key from it instead of measuring again
	// — unless the job asks for a fresh measurement (Job.Fresh).
	CacheDir string
}

// BudgetStretch is how far a profile's budget stretches past the base
// (PerBatch per batch size) for a model that needs it for MinRuns runs
// of every batch size.
const BudgetStretch = 8

// DefaultConfig measures each batch size for at least about 80 ms after
// warm-up, up to BudgetStretch times longer when the model needs it for
// MinRuns runs at every batch size.
func DefaultConfig() Config {
	return Config{Warmup: 5, MinIters: 20, MaxIters: MaxRuns, PerBatch: 80 * time.Millisecond, Timeout: 2 * time.Minute}
}

// Profiler runs child processes one at a time.
type Profiler struct {
	cfg Config
	exe string
	sem chan struct{}
}

// New returns a profiler that re-executes exe (normally os.Executable()).
// The process must call MaybeRunChild at start-up.
func New(exe string, cfg Config) *Profiler {
	return &Profiler{cfg: cfg, exe: exe, sem: make(chan struct{}, 1)}
}

// Config returns the measurement budget.
func (p *Profiler) Config() Config { return p.cfg }

// Run executes job in a child and returns its result. Files named by the
// job must exist. A model-level failure comes back as an error wrapping
// the child's message; a crashed child wraps ErrChild. With a CacheDir, a
// profile job measured before on this machine is answered from the cache
// (Result.Reused), and a new measurement is stored there; failures are
// never stored.
func (p *Profiler) Run(ctx context.Context, job Job) (Result, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	defer func() { <-p.sem }()
	key := ""
	if job.Kind == KindProfile {
		job = p.withBudget(job)
		if p.cfg.CacheDir != "" {
			var err error
			if key, err = cacheKey(job); err != nil {
				return Result{}, fmt.Errorf("profile cache: %w", err)
			}
			if !job.Fresh {
				if res, ok := p.cached(key); ok {
					return res, nil
				}
			}
		}
	}
	res, err := p.run(ctx, job)
	if err != nil || key == "" {
		return res, err
	}
	res.MeasuredAt = time.Now()
	if err := p.store(key, res, res.MeasuredAt); err != nil {
		res.Note = strings.TrimSpace(res.Note + " (not kept in the profile cache: " + err.Error() + ")")
	}
	return res, nil
}

// withBudget is a profile job with this profiler's measurement budget.
func (p *Profiler) withBudget(job Job) Job {
	job.Warmup, job.MinIters, job.MaxIters = p.cfg.Warmup, p.cfg.MinIters, p.cfg.MaxIters
	job.Budget = p.cfg.PerBatch * time.Duration(max(len(job.Batches), 1))
	job.MaxBudget = BudgetStretch * job.Budget
	return job
}

// run executes job in a child.
func (p *Profiler) run(ctx context.Context, job Job) (Result, error) {
	in, err := json.Marshal(job)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("%w: %s job took longer than %s", ErrChild, job.Kind, p.cfg.Timeout)
		}
		return Result{}, fmt.Errorf("%w: %s job: %v: %s", ErrChild, job.Kind, runErr, lastLine(stderr.String()))
	}
	if res.Error != "" {
		return Result{}, errors.New(res.Error)
	}
	return res, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "no output (crashed?)"
	}
	return s
}

// Workdir is a private temporary directory for one registration's files.
type Workdir struct{ Dir string }

// NewWorkdir creates a temporary directory; Close removes it.
func NewWorkdir() (*Workdir, error) {
	d, err := os.MkdirTemp("", "infaas-profile-")
	if err != nil {
		return nil, err
	}
	return &Workdir{Dir: d}, nil
}

// Write stores data under name and returns the path.
func (w *Workdir) Write(name string, data []byte) (string, error) {
	p := filepath.Join(w.Dir, name)
	return p, os.WriteFile(p, data, 0o600)
}

// Close removes the directory.
func (w *Workdir) Close() error { return os.RemoveAll(w.Dir) }
