// Package local is the provider of workers on this machine: each worker
// is an `infaas worker` child process pinned to its own CPUs, so classes
// with different core counts are really different here. Children die with
// their parent (Linux parent-death signal, and a parent-PID check in the
// worker), so no worker outlives the controller that started it.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/internal/cpuset"
	"github.com/infaas/infaas/provider"
)

// ParentPIDEnv tells a worker which process started it; the worker exits
// when its parent changes.
const ParentPIDEnv = "INFAAS_PARENT_PID"

// Config configures the local provider.
type Config struct {
	// Exe is the infaas binary (normally os.Executable()).
	Exe string
	// Controller is the cluster address workers announce themselves to.
	Controller string
	// Repository is the model repository's bucket URL workers read from.
	Repository string
	// ClassesFile, when set, is passed on so workers know custom classes.
	ClassesFile string
	// Env is added to each worker's environment (the cluster token).
	Env []string
	// Args are extra flags for every worker (e.g. --log-level).
	Args []string
	// MemoryBytes overrides the class's memory for each worker; 0 keeps it.
	MemoryBytes int64
	// CPUs are the CPUs workers are pinned to, shared out in turn; nil
	// means every CPU this process may use.
	CPUs []int
	// Restart starts a worker again when it exits on its own.
	Restart bool
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; 0
	// means 10 s.
	StopGrace time.Duration
	Log       *slog.Logger
}

// Provider runs workers as child processes.
type Provider struct {
	cfg Config

	mu      sync.Mutex
	seq     int
	next    int // index into cfg.CPUs of the next worker's first CPU
	workers map[string]*child
	closed  bool
	quit    chan struct{} // closed when Run starts stopping
	wg      sync.WaitGroup
}

type child struct {
	info    provider.Worker
	class   catalog.HardwareClass
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process exited
	stopped bool          // Stop was called
}

var _ provider.Provider = (*Provider)(nil)

// New checks cfg and returns a provider; it starts nothing.
func New(cfg Config) (*Provider, error) {
	if cfg.Exe == "" || cfg.Controller == "" || cfg.Repository == "" {
		return nil, errors.New("local provider: Exe, Controller and Repository are required")
	}
	if cfg.CPUs == nil {
		cpus, err := cpuset.Allowed()
		if err != nil {
			return nil, err
		}
		cfg.CPUs = cpus
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Provider{cfg: cfg, workers: map[string]*child{}, quit: make(chan struct{})}, nil
}

// Name is "local".
func (p *Provider) Name() string { return "local" }

// Start launches `infaas worker` for class, pinned to the class's number
// of CPUs (taken in turn from the CPUs this provider may use, so two
// one-core workers on a two-core machine get one core each).
func (p *Provider) Start(ctx context.Context, class catalog.HardwareClass) (provider.Worker, error) {
	if class.Provider != "cpu" {
		return provider.Worker{}, fmt.Errorf("%w: the local provider runs CPU workers; class %s needs %s", provider.ErrCapacity, class.Name, class.Provider)
	}
	if class.Cores > len(p.cfg.CPUs) {
		return provider.Worker{}, fmt.Errorf("%w: class %s needs %d cores; this machine gives infaas %d (%s)",
			provider.ErrCapacity, class.Name, class.Cores, len(p.cfg.CPUs), cpuset.Format(p.cfg.CPUs))
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return provider.Worker{}, errors.New("local provider: stopped")
	}
	p.seq++
	id := fmt.Sprintf("local-%d-%s", p.seq, class.Name)
	cpus := make([]int, 0, class.Cores)
	for range class.Cores {
		cpus = append(cpus, p.cfg.CPUs[p.next%len(p.cfg.CPUs)])
		p.next++
	}
	slices.Sort(cpus)
	c := &child{class: class, info: provider.Worker{ID: id, Class: class.Name, CPUs: cpuset.Format(cpus)}}
	if err := p.spawn(c); err != nil {
		p.mu.Unlock()
		return provider.Worker{}, err
	}
	p.workers[id] = c
	p.mu.Unlock()
	return c.info, nil
}

// spawn starts c's process. Call with p.mu held.
func (p *Provider) spawn(c *child) error {
	args := []string{"worker", "--id", c.info.ID, "--class", c.class.Name, "--controller", p.cfg.Controller,
		"--repository", p.cfg.Repository, "--cpus", c.info.CPUs, "--listen", "127.0.0.1:0"}
	if p.cfg.ClassesFile != "" {
		args = append(args, "--classes", p.cfg.ClassesFile)
	}
	if p.cfg.MemoryBytes > 0 {
		args = append(args, "--memory", strconv.FormatInt(p.cfg.MemoryBytes, 10))
	}
	args = append(args, p.cfg.Args...)
	cmd := exec.Command(p.cfg.Exe, args...)
	cmd.Env = append(append(os.Environ(), p.cfg.Env...), ParentPIDEnv+"="+strconv.Itoa(os.Getpid()))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// The kernel sends the worker SIGTERM when the thread that started it
	// ends. Go keeps its threads until the process ends (a thread dies
	// early only if a goroutine exits while locked to it, which the
	// lock/unlock pair here does not do), and the worker also watches its
	// parent's PID (ParentPIDEnv) in case the signal is missed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("start worker %s: %w", c.info.ID, err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	c.info.PID, c.info.State, c.info.Started = cmd.Process.Pid, provider.StateRunning, time.Now()
	p.cfg.Log.Info("started worker", "worker", c.info.ID, "class", c.class.Name, "cpus", c.info.CPUs, "pid", c.info.PID)
	p.wg.Add(1)
	go p.reap(c, cmd, c.done)
	return nil
}

// reap waits for a process to end and restarts it when it ended on its own
// and restarts are on.
func (p *Provider) reap(c *child, cmd *exec.Cmd, done chan struct{}) {
	defer p.wg.Done()
	err := cmd.Wait()
	exit := "exit status 0"
	if err != nil {
		exit = err.Error()
	}
	p.mu.Lock()
	close(done)
	c.info.Exit = exit
	if c.stopped || p.closed {
		c.info.State = provider.StateStopped
		p.mu.Unlock()
		return
	}
	c.info.State = provider.StateExited
	restart := p.cfg.Restart
	p.mu.Unlock()
	p.cfg.Log.Warn("worker exited", "worker", c.info.ID, "exit", exit, "restart", restart)
	if !restart {
		return
	}
	backoff := time.NewTimer(min(time.Duration(1<<min(c.info.Restarts, 5))*time.Second, 30*time.Second))
	defer backoff.Stop()
	select {
	case <-backoff.C:
	case <-p.quit:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.stopped || p.closed {
		return
	}
	c.info.Restarts++
	if err := p.spawn(c); err != nil {
		p.cfg.Log.Error("restart worker", "worker", c.info.ID, "err", err)
	}
}

// Stop sends SIGTERM to worker id and waits for it to end, sending
// SIGKILL after the grace period or when ctx ends.
func (p *Provider) Stop(ctx context.Context, id string) error {
	p.mu.Lock()
	c, ok := p.workers[id]
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("%w: %s", provider.ErrUnknownWorker, id)
	}
	c.stopped = true
	cmd, done := c.cmd, c.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(p.cfg.StopGrace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.cfg.Log.Warn("worker did not stop in time; killing it", "worker", id, "grace", p.cfg.StopGrace)
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// List returns the workers started, by ID.
func (p *Provider) List() []provider.Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]provider.Worker, 0, len(p.workers))
	for _, c := range p.workers {
		out = append(out, c.info)
	}
	slices.SortFunc(out, func(a, b provider.Worker) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Run waits for ctx to end, then stops every worker (in parallel) and
// waits for their processes.
func (p *Provider) Run(ctx context.Context) error {
	<-ctx.Done()
	p.mu.Lock()
	p.closed = true
	close(p.quit)
	ids := make([]string, 0, len(p.workers))
	for id := range p.workers {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Stop(context.Background(), id)
		}()
	}
	wg.Wait()
	p.wg.Wait()
	return nil
}
