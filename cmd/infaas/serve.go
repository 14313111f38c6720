package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/infaas/infaas/api"
	"github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/controller"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/metrics"
	"github.com/infaas/infaas/profiler"
	"github.com/infaas/infaas/registrar"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/selection"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// serveConfig is `infaas serve`'s configuration.
type serveConfig struct {
	Data       string
	HTTPAddr   string
	GRPCAddr   string
	Metrics    string
	Policy     string
	WorkerMem  int64
	Pprof      bool
	Store      string // "bolt" (in Data) or a redis:// URL
	Repository string // bucket URL; default Data/models
	MaxUpload  int64
	LogLevel   string
	Profile    profiler.Config
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Data:      "infaas-data",
		HTTPAddr:  "127.0.0.1:8000",
		GRPCAddr:  "127.0.0.1:8001",
		Metrics:   "127.0.0.1:8002",
		Policy:    "infaas",
		WorkerMem: 4 << 30,
		Store:     "bolt",
		MaxUpload: 256 << 20,
		LogLevel:  "info",
		Profile:   profiler.DefaultConfig(),
	}
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", c.Data, "data `directory` (metadata and, by default, the model repository)")
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen `address` (management API and Open Inference Protocol)")
	fs.StringVar(&c.GRPCAddr, "grpc", c.GRPCAddr, "gRPC listen `address` (Open Inference Protocol and the worker service)")
	fs.StringVar(&c.Metrics, "metrics", c.Metrics, "Prometheus metrics listen `address` (/metrics); empty disables")
	fs.StringVar(&c.Policy, "policy", c.Policy, "selection `policy`: "+strings.Join(selection.Names(), ", "))
	fs.Int64Var(&c.WorkerMem, "worker-memory", c.WorkerMem, "memory in `bytes` the local worker may fill with replicas")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go's profiler at /debug/pprof/ on the HTTP address")
	fs.StringVar(&c.Store, "store", c.Store, "metadata store: bolt (embedded, in --data) or a redis://host:port/db `URL`")
	fs.StringVar(&c.Repository, "repository", c.Repository, "model repository bucket `URL` (file://, s3://, gs://, azblob://; default DATA/models)")
	fs.Int64Var(&c.MaxUpload, "max-upload", c.MaxUpload, "largest registration upload in `bytes`")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&c.Profile.PerBatch, "profile-time", c.Profile.PerBatch, "time spent measuring each batch size of each variant")
}

func (c *serveConfig) validate() error {
	if c.Data == "" {
		return errors.New("--data must name a directory")
	}
	if c.MaxUpload <= 0 {
		return errors.New("--max-upload must be positive")
	}
	if c.Store != "bolt" && !strings.HasPrefix(c.Store, "redis://") && !strings.HasPrefix(c.Store, "rediss://") {
		return fmt.Errorf("--store %q: want bolt or a redis:// URL", c.Store)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("--http %q: %v", c.HTTPAddr, err)
	}
	if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
		return fmt.Errorf("--grpc %q: %v", c.GRPCAddr, err)
	}
	if c.WorkerMem <= 0 {
		return errors.New("--worker-memory must be positive")
	}
	return nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runServe(ctx context.Context, args []string) error {
	cfg := defaultServeConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serve(ctx, cfg, nil)
}

// serve runs the all-in-one server until ctx ends. ready, if set, is
// closed once the server accepts requests.
func serve(ctx context.Context, cfg serveConfig, ready chan<- serverAddrs) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	if err := executor.Init(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	var store metadata.Store
	if cfg.Store == "bolt" {
		store, err = metadata.OpenBolt(filepath.Join(cfg.Data, "metadata.db"))
	} else {
		store, err = metadata.OpenRedis(ctx, cfg.Store)
	}
	if err != nil {
		return fmt.Errorf("metadata store: %w", err)
	}
	defer store.Close()

	repoURL := cfg.Repository
	if repoURL == "" {
		repoURL = filepath.Join(cfg.Data, "models")
	}
	repo, err := repository.Open(ctx, repoURL)
	if err != nil {
		return err
	}
	defer repo.Close()

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	prof := profiler.New(exe, cfg.Profile)
	rcfg := registrar.DefaultConfig()
	rcfg.MaxModelBytes = cfg.MaxUpload
	reg := registrar.New(rcfg, store, repo, prof, log.With("component", "registrar"))

	wk, err := worker.New(worker.Config{ID: "local", Hardware: rcfg.Hardware, MemoryBytes: cfg.WorkerMem,
		Logger: log.With("component", "worker")}, repo)
	if err != nil {
		return err
	}
	ccfg := controller.DefaultConfig()
	ccfg.Policy = cfg.Policy
	ccfg.Classes = []catalog.HardwareClass{rcfg.Hardware}
	promReg := prometheus.NewRegistry()
	ccfg.Metrics = metrics.New(promReg, func() []worker.Status { return []worker.Status{wk.State()} })
	ctrl, err := controller.New(ccfg, store, []controller.Worker{workerrpc.Local{Worker: wk}}, log.With("component", "controller"))
	if err != nil {
		return err
	}

	reg.OnCommit = func(ctx context.Context) {
		if err := ctrl.Refresh(ctx); err != nil {
			log.Error("refresh after registration", "err", err)
		}
	}

	reg.OnDelete = func(ctx context.Context, name string) {
		if err := ctrl.Refresh(ctx); err != nil {
			log.Error("refresh after delete", "err", err)
		}
		ctrl.UnloadArchitecture(name)
	}

	mux := http.NewServeMux()
	(&api.Management{Store: store, Registrar: reg, MaxUploadBytes: cfg.MaxUpload, Log: log,
		Decisions: func() any { return ctrl.Decisions() }, Workers: func() any { return []worker.Status{wk.State()} }}).Register(mux)
	api.RegisterHealth(mux, ctrl)
	api.RegisterInference(mux, ctrl, 64<<20)
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another infaas or Triton running? pick another address with --http)", cfg.HTTPAddr, err)
	}
	gln, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen on %s: %w (is another infaas or Triton running? pick another address with --grpc)", cfg.GRPCAddr, err)
	}
	// Stream workers reuse goroutines (and their grown stacks) across calls.
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20), grpc.NumStreamWorkers(uint32(runtime.NumCPU())),
		grpc.ChainUnaryInterceptor(api.RecoverUnary(log)))
	inferencepb.RegisterGRPCInferenceServiceServer(gs, api.NewInferenceServer(ctrl))
	workerpb.RegisterWorkerServer(gs, workerrpc.NewServer(wk))

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	servers := []*http.Server{srv}
	listeners := []net.Listener{ln}
	if cfg.Metrics != "" {
		mln, err := net.Listen("tcp", cfg.Metrics)
		if err != nil {
			ln.Close()
			gln.Close()
			return fmt.Errorf("listen on %s: %w (pick another address with --metrics, or --metrics '' to disable)", cfg.Metrics, err)
		}
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}))
		servers = append(servers, &http.Server{Handler: mmux, ReadHeaderTimeout: 10 * time.Second})
		listeners = append(listeners, mln)
	}
	log.Info("infaas serving", "http", ln.Addr().String(), "grpc", gln.Addr().String(), "metrics", cfg.Metrics, "data", cfg.Data, "store", cfg.Store,
		"repository", repo.URL(), "onnxruntime", executor.Version(), "hardware", rcfg.Hardware.Name, "policy", ctrl.Policy())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return reg.Run(gctx) })
	g.Go(func() error { return wk.Run(gctx) })
	g.Go(func() error { return ctrl.Run(gctx) })
	for i, hs := range servers {
		g.Go(func() error {
			if err := hs.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error { return gs.Serve(gln) })
	g.Go(func() error {
		<-gctx.Done()
		gs.GracefulStop()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		for _, hs := range servers {
			err = errors.Join(err, hs.Shutdown(sctx))
		}
		return err
	})
	if ready != nil {
		ready <- serverAddrs{HTTP: "http://" + ln.Addr().String(), GRPC: gln.Addr().String()}
	}
	err = g.Wait()
	log.Info("infaas stopped")
	return err
}

// serverAddrs are where a started server listens.
type serverAddrs struct{ HTTP, GRPC string }
