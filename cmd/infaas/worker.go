package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/infaas/infaas/api"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/internal/cgroup"
	"github.com/infaas/infaas/internal/cpuset"
	"github.com/infaas/infaas/profiler"
	"github.com/infaas/infaas/provider/local"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// workerConfig is `infaas worker`'s configuration.
type workerConfig struct {
	ID          string
	Class       string
	ClassesFile string
	Listen      string
	Advertise   string
	Controllers string // comma-separated cluster addresses
	// ControllerService is NAME:PORT of a name that resolves to every
	// controller (a headless Service); the worker joins each.
	ControllerService string
	CPUs              string
	Memory            int64
	Repository        string
	TokenFile         string
	// Insecure lets --listen be beyond loopback without a cluster token.
	Insecure bool
	LogLevel string
	Profile  profiler.Config
}

func defaultWorkerConfig() workerConfig {
	return workerConfig{
		ID:       processID(),
		Class:    catalog.LocalCPU().Name,
		Listen:   "127.0.0.1:0",
		LogLevel: "info",
		Profile:  profiler.DefaultConfig(),
	}
}

// sanitizeID keeps the characters a worker ID may hold.
func sanitizeID(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "worker"
	}
	return b.String()
}

func (c *workerConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.ID, "id", c.ID, "worker `ID` (letters, digits, - and _), unique in the cluster")
	fs.StringVar(&c.Class, "class", c.Class, "hardware `class` of this worker, from the catalogue")
	fs.StringVar(&c.ClassesFile, "classes", c.ClassesFile, "hardware catalogue `file` (JSON; default: built-in classes)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "listen `address` of the worker service (the private worker plane)")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "`address` the controller dials (default: the listen address)")
	fs.StringVar(&c.Controllers, "controller", c.Controllers, "controller cluster `addresses`, comma-separated (required)")
	fs.StringVar(&c.ControllerService, "controller-service", c.ControllerService, "`name:port` that resolves to every controller's cluster address (a Kubernetes headless Service); the worker joins each, re-resolving every 10 s")
	fs.StringVar(&c.CPUs, "cpus", c.CPUs, "pin the worker to this CPU `list` (e.g. 0 or 0-1); default: no pinning")
	fs.Int64Var(&c.Memory, "memory", c.Memory, "memory in `bytes` replicas may fill (default: the class's, less where the container's memory limit leaves less)")
	fs.StringVar(&c.Repository, "repository", c.Repository, "model repository bucket `URL` (the controller's; required)")
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "`file` holding the cluster token (default: $"+workerrpc.TokenEnv+")")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "let --listen be beyond loopback without a cluster token")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&c.Profile.PerBatch, "profile-time", c.Profile.PerBatch, "time spent measuring each batch size when profiling a variant here")
}

func runWorker(ctx context.Context, args []string) error {
	cfg := defaultWorkerConfig()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runWorkerProcess(ctx, cfg)
}

// clusterToken reads the token from file, else from the environment.
func clusterToken(file string) (string, error) {
	if file == "" {
		return os.Getenv(workerrpc.TokenEnv), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	return tok, nil
}

func runWorkerProcess(ctx context.Context, cfg workerConfig) error {
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	if cfg.Controllers == "" && cfg.ControllerService == "" {
		return errors.New("--controller (or --controller-service) is required: the cluster address of the controller to join (infaas controller --cluster)")
	}
	if cfg.ControllerService != "" {
		if _, _, err := net.SplitHostPort(cfg.ControllerService); err != nil {
			return fmt.Errorf("--controller-service %q: want name:port (%v)", cfg.ControllerService, err)
		}
	}
	if cfg.Repository == "" {
		return errors.New("--repository is required: the model repository the controller uses (its --repository, or DATA/models)")
	}
	if err := catalog.ValidateName("worker ID", cfg.ID); err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	classes, err := catalog.LoadClasses(cfg.ClassesFile)
	if err != nil {
		return err
	}
	class, ok := catalog.FindClass(classes, cfg.Class)
	if !ok {
		return fmt.Errorf("--class %q is not in the catalogue (%s)", cfg.Class, strings.Join(catalog.ClassNames(classes), ", "))
	}
	if cfg.CPUs != "" {
		cpus, err := cpuset.Parse(cfg.CPUs)
		if err != nil {
			return fmt.Errorf("--cpus: %w", err)
		}
		if len(cpus) != class.Cores {
			log.Warn("the CPU list does not match the class's cores", "cpus", cfg.CPUs, "class", class.Name, "cores", class.Cores)
		}
		if err := cpuset.PinProcess(cpus); err != nil {
			return err
		}
		runtime.GOMAXPROCS(len(cpus))
	} else if class.Cores < runtime.NumCPU() {
		log.Warn("a class smaller than the machine without --cpus: profiles measured here will not show the class's limits",
			"class", class.Name, "cores", class.Cores, "machine_cores", runtime.NumCPU())
	}
	token, err := clusterToken(cfg.TokenFile)
	if err != nil {
		return err
	}
	if err := checkPlane("--listen", cfg.Listen, token, cfg.Insecure, log); err != nil {
		return err
	}
	if err := executor.Init(); err != nil {
		return err
	}
	repo, err := repository.Open(ctx, cfg.Repository)
	if err != nil {
		return err
	}
	defer repo.Close()
	memory := cfg.Memory
	if memory <= 0 {
		memory = fitMemory(class.MemoryBytes, log)
	}
	wk, err := worker.New(worker.Config{ID: cfg.ID, Hardware: class, MemoryBytes: memory, Logger: log.With("component", "worker")}, repo)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	prof := profiler.New(exe, cfg.Profile)
	srv := workerrpc.NewServer(wk)
	srv.Profiler = func(ctx context.Context, v catalog.Variant, a catalog.Architecture) (catalog.Profile, error) {
		model, err := repo.Get(ctx, v.FileDigest)
		if err != nil {
			return catalog.Profile{}, fmt.Errorf("profile %s: fetch graph: %w", v.Name, err)
		}
		p, err := prof.MeasureVariant(ctx, model, v, a)
		if err != nil {
			return catalog.Profile{}, err
		}
		p.Hardware = class.Name + " (" + p.Hardware + ")"
		return p, nil
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (pick another address with --listen)", cfg.Listen, err)
	}
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	opts := append(workerrpc.ServerOptions(), grpc.ChainUnaryInterceptor(api.RecoverUnary(log)))
	opts = append(opts, workerrpc.ServerAuth(token)...)
	gs := grpc.NewServer(opts...)
	workerpb.RegisterWorkerServer(gs, srv)

	inc := make([]byte, 6)
	_, _ = rand.Read(inc)
	hello := workerrpc.Hello{WorkerID: cfg.ID, Address: advertise, Class: class, Incarnation: hex.EncodeToString(inc)}
	log.Info("infaas worker", "id", cfg.ID, "class", class.Name, "listen", ln.Addr().String(), "advertise", advertise,
		"controllers", cfg.Controllers, "cpus", cfg.CPUs, "memory_bytes", memory, "onnxruntime", executor.Version())

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(wctx)
	g.Go(func() error { return wk.Run(gctx) })
	g.Go(func() error { return gs.Serve(ln) })
	g.Go(func() error {
		<-gctx.Done()
		gs.GracefulStop()
		return nil
	})
	announce := func(ctx context.Context, addr string) error {
		a := &workerrpc.Announcer{Controller: addr, Hello: hello, State: wk.State,
			DialOptions: workerrpc.ClientAuth(token), Log: log.With("component", "announcer")}
		return a.Run(ctx)
	}
	if cfg.Controllers != "" {
		for _, addr := range strings.Split(cfg.Controllers, ",") {
			g.Go(func() error { return announce(gctx, strings.TrimSpace(addr)) })
		}
	}
	if cfg.ControllerService != "" {
		g.Go(func() error { return announceAll(gctx, cfg.ControllerService, 10*time.Second, announce, log) })
	}
	if ppid, err := strconv.Atoi(os.Getenv(local.ParentPIDEnv)); err == nil && ppid > 0 {
		// Started by a provider: end with it, even if the parent-death
		// signal was missed.
		g.Go(func() error {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-t.C:
					if os.Getppid() != ppid {
						log.Warn("the process that started this worker is gone; stopping", "parent_pid", ppid)
						cancel()
						return nil
					}
				}
			}
		})
	}
	err = g.Wait()
	log.Info("infaas worker stopped", "id", cfg.ID)
	return err
}

// announceAll joins every controller that service (name:port) resolves to,
// re-resolving every period: a controller that appears is joined, one
// that disappears is left. A failed lookup keeps the controllers it had.
func announceAll(ctx context.Context, service string, period time.Duration, announce func(context.Context, string) error, log *slog.Logger) error {
	host, port, err := net.SplitHostPort(service)
	if err != nil {
		return err
	}
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, period)
		ips, err := net.DefaultResolver.LookupHost(lctx, host)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("resolve the controllers", "service", service, "err", err)
		}
		if err == nil {
			want := map[string]bool{}
			for _, ip := range ips {
				want[net.JoinHostPort(ip, port)] = true
			}
			for addr, stop := range running {
				if !want[addr] {
					log.Info("controller left the service; leaving it", "controller", addr)
					stop()
					delete(running, addr)
				}
			}
			for addr := range want {
				if _, ok := running[addr]; ok {
					continue
				}
				actx, stop := context.WithCancel(ctx)
				running[addr] = stop
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = announce(actx, addr)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// processReserve is what a worker keeps for itself beside its replicas: the
// Go runtime, gRPC buffers, the requests in flight.
const processReserve = 256 << 20

// fitMemory is the memory replicas may fill: the class's, or less when the
// container's memory limit (a Kubernetes pod's limits.memory) leaves less
// beside the process's own reserve — planning past the limit would end in
// the kernel killing the worker with every replica on it.
func fitMemory(class int64, log *slog.Logger) int64 {
	limit, ok := cgroup.MemoryLimit()
	if !ok || limit-processReserve >= class {
		return class
	}
	fit := max(limit-processReserve, limit/2)
	log.Warn("the container's memory limit leaves less than the class's memory: replicas fill what fits",
		"limit_bytes", limit, "class_bytes", class, "replica_bytes", fit)
	return fit
}
