package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"google.golang.org/grpc/credentials"
	"log/slog"
	"math"
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
	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/controller"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/metrics"
	"github.com/infaas/infaas/policies"
	"github.com/infaas/infaas/profiler"
	"github.com/infaas/infaas/provider"
	"github.com/infaas/infaas/provider/kube"
	"github.com/infaas/infaas/provider/local"
	"github.com/infaas/infaas/registrar"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// maxInferBody is the largest HTTP inference body (the gRPC message limit
// too).
const maxInferBody = 64 << 20

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
	// GCGrace is how long a model file stays after no record references
	// it (registrar.Config.GCGrace).
	GCGrace time.Duration
	// MaxBodyMemory bounds the request bodies held at once (api.BodyBudget).
	MaxBodyMemory int64
	FileRoots     []string
	// TLSCert and TLSKey, when set, serve the public HTTP and gRPC ports
	// over TLS.
	TLSCert, TLSKey string
	// Auth is the API keys file (api.LoadKeys); Insecure lets the public
	// ports listen beyond loopback without it.
	Auth     string
	Insecure bool
	// RateLimit is each tenant's requests per second (with --auth); 0: none.
	RateLimit float64
	// HTTPReadTimeout bounds reading one whole HTTP request.
	HTTPReadTimeout time.Duration
	// HTTPWriteTimeout bounds one request from its headers to the end of
	// its answer (net/http's WriteTimeout; the event stream is exempt).
	HTTPWriteTimeout time.Duration
	LogLevel         string
	// ProfileCache is where measured profiles are kept for reuse ("":
	// DATA/profiles; "off": measure every registration afresh).
	ProfileCache string
	Profile      profiler.Config

	// Cluster is the worker plane's listen address: workers join here.
	Cluster string
	// ClassesFile is the hardware catalogue (empty: built in); Class the
	// class registrations are profiled as (this machine's).
	ClassesFile string
	Class       string
	// Workers lists the local workers to start, one class name each.
	Workers          string
	HeartbeatTimeout time.Duration
	TokenFile        string
	ID               string

	// Autoscaling: the model autoscaler (on unless Autoscale is false or
	// the policy is static) and the cluster autoscaler (on when MaxWorkers
	// exceeds the local workers started).
	Autoscale  bool
	Fixed      string // arch=variant,... for the fixed policies
	MinWorkers int    // -1: the number of --workers (with Kubernetes: 1)
	MaxWorkers int    // 0: no cluster autoscaling
	// Provider is where workers come from: "local" (children of this
	// process, --workers) or "kubernetes" (pods of worker Deployments).
	Provider   string
	Kube       kubeConfig
	Scale      autoscale.Config
	ClusterCfg autoscale.ClusterConfig
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Data:             "infaas-data",
		HTTPAddr:         "127.0.0.1:8000",
		GRPCAddr:         "127.0.0.1:8001",
		Metrics:          "127.0.0.1:8002",
		Policy:           "infaas",
		WorkerMem:        0,
		Store:            "bolt",
		MaxUpload:        256 << 20,
		GCGrace:          registrar.DefaultGCGrace,
		MaxBodyMemory:    512 << 20,
		HTTPReadTimeout:  5 * time.Minute,
		HTTPWriteTimeout: 10 * time.Minute,
		LogLevel:         "info",
		Profile:          profiler.DefaultConfig(),

		Cluster:          "127.0.0.1:8003",
		Class:            catalog.LocalCPU().Name,
		Workers:          catalog.LocalCPU().Name,
		HeartbeatTimeout: time.Second,
		ID:               processID(),

		Autoscale:  true,
		MinWorkers: -1,
		Provider:   "local",
		Kube:       kubeConfig{Lease: "infaas-autoscaler"},
		Scale:      autoscale.DefaultConfig(),
		ClusterCfg: autoscale.DefaultClusterConfig(),
	}
}

// defaultControllerConfig is `infaas controller`'s: no local workers
// (they join from elsewhere) and the Redis store.
func defaultControllerConfig() serveConfig {
	c := defaultServeConfig()
	c.Workers = ""
	c.Store = "redis://127.0.0.1:6379/0"
	// Controllers sharing workers would each scale them: enable it on one.
	c.Autoscale = false
	return c
}

// processID names this process in a cluster: host name and PID, in the
// characters an ID may hold. Controllers and workers default to it.
func processID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", sanitizeID(host), os.Getpid())
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", c.Data, "data `directory` (metadata and, by default, the model repository)")
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen `address` (management API and Open Inference Protocol)")
	fs.StringVar(&c.GRPCAddr, "grpc", c.GRPCAddr, "gRPC listen `address` (Open Inference Protocol)")
	fs.StringVar(&c.Cluster, "cluster", c.Cluster, "worker plane listen `address`: workers join here (keep it private)")
	fs.StringVar(&c.ClassesFile, "classes", c.ClassesFile, "hardware catalogue `file` (JSON; default: built-in classes)")
	fs.StringVar(&c.Class, "class", c.Class, "hardware `class` registrations are profiled as (this machine's)")
	fs.StringVar(&c.Workers, "workers", c.Workers, "local workers to start, one hardware `class` each, comma-separated (e.g. cpu-1,cpu-1,cpu-2); empty: none")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", c.HeartbeatTimeout, "a worker silent this long leaves routing")
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "`file` holding the cluster token workers must present (default: $"+workerrpc.TokenEnv+"; local workers get a random one)")
	fs.StringVar(&c.ID, "id", c.ID, "controller `ID`, shown to workers and in logs")
	fs.StringVar(&c.Metrics, "metrics", c.Metrics, "Prometheus metrics listen `address` (/metrics); empty disables")
	fs.StringVar(&c.Policy, "policy", c.Policy, "serving `policy`: "+strings.Join(policies.Names(), ", ")+" (see README: baselines)")
	fs.StringVar(&c.Fixed, "fixed", c.Fixed, "the fixed policies' variant per architecture, `arch=variant,...` (default: each architecture's cheapest fp32 variant)")
	fs.BoolVar(&c.Autoscale, "autoscale", c.Autoscale, "run the model autoscaler (replicate, switch variants, downgrade, unload)")
	fs.IntVar(&c.MinWorkers, "min-workers", c.MinWorkers, "the cluster autoscaler never goes below this many workers (-1: the number of --workers, at least 1)")
	fs.IntVar(&c.MaxWorkers, "max-workers", c.MaxWorkers, "the cluster autoscaler adds workers up to this many (0: off)")
	fs.StringVar(&c.Provider, "provider", c.Provider, "where workers come from: local (child processes, --workers) or kubernetes (pods of per-class worker Deployments)")
	fs.StringVar(&c.Kube.Kubeconfig, "kubeconfig", c.Kube.Kubeconfig, "with --provider kubernetes: kubeconfig `file` (default: in-cluster, the pod's ServiceAccount)")
	fs.StringVar(&c.Kube.Namespace, "kube-namespace", c.Kube.Namespace, "with --provider kubernetes: `namespace` of the worker Deployments (default: the pod's)")
	fs.StringVar(&c.Kube.Workers, "kube-workers", c.Kube.Workers, "with --provider kubernetes: worker Deployment per class, `class=deployment,...` (default: infaas-worker-CLASS)")
	fs.StringVar(&c.Kube.Lease, "kube-lease", c.Kube.Lease, "with --provider kubernetes: the Lease `name` whose holder runs the autoscalers (empty: every controller scales)")
	fs.Float64Var(&c.Scale.ScaleUpAt, "scale-up-at", c.Scale.ScaleUpAt, "add capacity when demand exceeds this `fraction` of what the replicas sustain")
	fs.Float64Var(&c.Scale.Target, "scale-target", c.Scale.Target, "the busy `fraction` a scale-up aims at (between --scale-down-at and --scale-up-at)")
	fs.Float64Var(&c.Scale.ScaleDownAt, "scale-down-at", c.Scale.ScaleDownAt, "remove a replica when demand stays below this `fraction` of what the rest would sustain")
	fs.DurationVar(&c.Scale.UpWindow, "scale-up-window", c.Scale.UpWindow, "demand must stay near capacity this long before scaling up")
	fs.DurationVar(&c.Scale.DownWindow, "scale-down-window", c.Scale.DownWindow, "demand must stay low this long before a replica is removed or a variant downgraded")
	fs.DurationVar(&c.Scale.Cooldown, "scale-cooldown", c.Scale.Cooldown, "least time between two scaling actions on one architecture")
	fs.DurationVar(&c.Scale.IdleUnload, "idle-unload", c.Scale.IdleUnload, "unload an architecture's replicas after no traffic this long (negative: never)")
	fs.DurationVar(&c.ClusterCfg.IdleCooldown, "worker-idle", c.ClusterCfg.IdleCooldown, "remove an added worker after it served nothing this long")
	fs.DurationVar(&c.ClusterCfg.Interval, "worker-interval", c.ClusterCfg.Interval, "least time between two worker starts or stops")
	fs.Int64Var(&c.WorkerMem, "worker-memory", c.WorkerMem, "memory in `bytes` each local worker may fill with replicas (0: its class's)")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go's profiler at /debug/pprof/ on the HTTP address")
	fs.StringVar(&c.Store, "store", c.Store, "metadata store: bolt (embedded, in --data) or a redis://host:port/db `URL`")
	fs.StringVar(&c.Repository, "repository", c.Repository, "model repository bucket `URL` (file://, s3://, gs://, azblob://; default DATA/models)")
	fs.Int64Var(&c.MaxUpload, "max-upload", c.MaxUpload, "largest registration upload in `bytes`")
	fs.DurationVar(&c.GCGrace, "gc-grace", c.GCGrace, "how long a model file stays in the repository after no registration references it (deleted models, failed registrations) before it is deleted; the time to notice a metadata store that lost records and restore it (0: at once)")
	fs.Int64Var(&c.MaxBodyMemory, "max-body-memory", c.MaxBodyMemory, "`bytes` all request bodies (HTTP, and gRPC inference requests) being read and served may hold at once; over it 503 with Retry-After (gRPC: Unavailable) (at least --max-upload and the 64 MiB inference limit)")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", c.HTTPReadTimeout, "longest an HTTP client may take to send one whole request (an upload included)")
	fs.DurationVar(&c.HTTPWriteTimeout, "http-write-timeout", c.HTTPWriteTimeout, "longest one HTTP request may take from its headers to the end of its answer, reading its body included (at least --http-read-timeout); bounds a client that does not read its answer. GET /v1/events?follow=true is exempt")
	fs.Func("allow-file-root", "let registrations name model files by file:// URL under this `directory` (repeatable; default: none, upload the file instead)", func(v string) error {
		if !filepath.IsAbs(v) {
			return fmt.Errorf("--allow-file-root %q: give an absolute directory", v)
		}
		c.FileRoots = append(c.FileRoots, v)
		return nil
	})
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&c.Profile.PerBatch, "profile-time", c.Profile.PerBatch, "time spent measuring each batch size of each variant")
	fs.StringVar(&c.ProfileCache, "profile-cache", c.ProfileCache, "`directory` keeping every measured profile, so that the same graph registered again on this machine reuses it (default DATA/profiles; off: always measure; `infaas register --reprofile` measures one registration afresh)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "serve HTTP and gRPC over TLS with this PEM certificate `file` (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "the PEM private key `file` of --tls-cert")
	fs.StringVar(&c.Auth, "auth", c.Auth, "require API keys: a JSON `file` {\"keys\": [{\"key\", \"tenant\", \"role\": admin|user}]}")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "let the HTTP and gRPC ports listen beyond loopback without --auth, and the --cluster port without a cluster token")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "with --auth: each tenant's `requests` per second (bursts of twice that, at least 1); over it 429 with Retry-After; 0: no limit")
}

func (c *serveConfig) validate() error {
	if c.Data == "" {
		return errors.New("--data must name a directory")
	}
	if c.Auth == "" && !c.Insecure {
		for _, a := range []struct{ flag, addr string }{{"--http", c.HTTPAddr}, {"--grpc", c.GRPCAddr}} {
			if !isLoopback(a.addr) {
				return fmt.Errorf("%s %s listens beyond this machine without API keys: serve with --auth KEYS (and --tls-cert), or pass --insecure to accept it", a.flag, a.addr)
			}
		}
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || c.RateLimit > 0 && c.Auth == "" {
		return errors.New("--rate-limit is requests per second per tenant: a positive number, with --auth (tenants come from the keys)")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	if c.HTTPReadTimeout <= 0 {
		return errors.New("--http-read-timeout must be positive")
	}
	if c.HTTPWriteTimeout < c.HTTPReadTimeout {
		return fmt.Errorf("--http-write-timeout %s is below --http-read-timeout %s: its clock starts with the request's headers, so it must cover reading the body too", c.HTTPWriteTimeout, c.HTTPReadTimeout)
	}
	if c.MaxUpload <= 0 {
		return errors.New("--max-upload must be positive")
	}
	if c.GCGrace < 0 {
		return errors.New("--gc-grace must not be negative")
	}
	if c.MaxBodyMemory < max(c.MaxUpload, maxInferBody) {
		return fmt.Errorf("--max-body-memory %d is below --max-upload (%d) or the inference body limit (%d): the largest allowed body could never be read", c.MaxBodyMemory, c.MaxUpload, maxInferBody)
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
	if c.WorkerMem < 0 {
		return errors.New("--worker-memory must not be negative")
	}
	if _, _, err := net.SplitHostPort(c.Cluster); err != nil {
		return fmt.Errorf("--cluster %q: %v", c.Cluster, err)
	}
	if c.HeartbeatTimeout <= 0 {
		return errors.New("--heartbeat-timeout must be positive")
	}
	if _, err := policies.Lookup(c.Policy); err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	if _, err := c.Scale.WithDefaults(); err != nil {
		return fmt.Errorf("autoscaling flags: %w", err)
	}
	if c.MaxWorkers < 0 {
		return errors.New("--max-workers must not be negative")
	}
	switch c.Provider {
	case "local":
	case "kubernetes":
		if c.Workers != "" {
			return errors.New("--workers starts local workers; with --provider kubernetes workers are pods (leave --workers empty)")
		}
	default:
		return fmt.Errorf("--provider %q: want local or kubernetes", c.Provider)
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

func runController(ctx context.Context, args []string) error {
	cfg := defaultControllerConfig()
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serve(ctx, cfg, nil)
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

// serve runs a controller — front end, dispatcher, registrar, worker
// registry — with the local workers cfg.Workers names, until ctx ends.
// `infaas serve` is this with one local worker of this machine's class.
// ready, if set, receives the addresses once the server accepts requests.
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

	classes, err := catalog.LoadClasses(cfg.ClassesFile)
	if err != nil {
		return err
	}
	refClass, ok := catalog.FindClass(classes, cfg.Class)
	if !ok {
		return fmt.Errorf("--class %q is not in the hardware catalogue (%s)", cfg.Class, strings.Join(catalog.ClassNames(classes), ", "))
	}
	var localClasses []catalog.HardwareClass
	if cfg.Workers != "" {
		for _, name := range strings.Split(cfg.Workers, ",") {
			h, ok := catalog.FindClass(classes, strings.TrimSpace(name))
			if !ok {
				return fmt.Errorf("--workers: class %q is not in the hardware catalogue (%s)", name, strings.Join(catalog.ClassNames(classes), ", "))
			}
			localClasses = append(localClasses, h)
		}
	}
	token, err := clusterToken(cfg.TokenFile)
	if err != nil {
		return err
	}
	if token == "" && len(localClasses) > 0 && cfg.TokenFile == "" {
		// Local workers only: a fresh random token keeps the worker plane
		// closed to everyone else on the machine.
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		token = hex.EncodeToString(b)
	}
	if err := checkPlane("--cluster", cfg.Cluster, token, cfg.Insecure, log); err != nil {
		return err
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	switch cfg.ProfileCache {
	case "off":
	case "":
		cfg.Profile.CacheDir = filepath.Join(cfg.Data, "profiles")
	default:
		cfg.Profile.CacheDir = cfg.ProfileCache
	}
	prof := profiler.New(exe, cfg.Profile)
	rcfg := registrar.DefaultConfig()
	rcfg.MaxModelBytes = cfg.MaxUpload
	rcfg.FileRoots = cfg.FileRoots
	rcfg.GCGrace = cfg.GCGrace
	rcfg.Hardware = refClass
	reg := registrar.New(rcfg, store, repo, prof, log.With("component", "registrar"))

	var lns listeners
	defer lns.closeAll()
	ln, err := lns.listen(cfg.HTTPAddr, "--http")
	if err != nil {
		return err
	}
	gln, err := lns.listen(cfg.GRPCAddr, "--grpc")
	if err != nil {
		return err
	}
	cln, err := lns.listen(cfg.Cluster, "--cluster")
	if err != nil {
		return err
	}
	var ctrl *controller.Controller // set below; the Kubernetes provider's pod events reach its log
	var prov provider.Provider
	var elector *kube.Elector
	if cfg.Provider == "kubernetes" {
		if prov, elector, err = newKube(cfg.Kube, classes, cfg.ID, log, podEvents(&ctrl)); err != nil {
			return err
		}
	} else if len(localClasses) > 0 {
		prov, err = local.New(local.Config{Exe: exe, Controller: cln.Addr().String(), Repository: repo.URL(),
			ClassesFile: cfg.ClassesFile, Env: []string{workerrpc.TokenEnv + "=" + token},
			Args:        []string{"--log-level", cfg.LogLevel, "--profile-time", cfg.Profile.PerBatch.String()},
			MemoryBytes: cfg.WorkerMem, Restart: true, Log: log.With("component", "provider")})
		if err != nil {
			return err
		}
	}
	sp, err := policies.Lookup(cfg.Policy)
	if err != nil {
		return err
	}
	ccfg := controller.DefaultConfig()
	ccfg.Policy = sp.Selection
	if ccfg.PolicyConfig, err = sp.SelectionConfig(cfg.Fixed); err != nil {
		return err
	}
	if cfg.Autoscale {
		m := sp.Models(cfg.Scale)
		ccfg.Autoscale.Models = &m
	}
	if prov != nil && cfg.MaxWorkers > len(localClasses) {
		cc := cfg.ClusterCfg
		cc.MinWorkers, cc.MaxWorkers = cfg.MinWorkers, cfg.MaxWorkers
		if cc.MinWorkers < 0 {
			cc.MinWorkers = max(len(localClasses), 1)
		}
		ccfg.Autoscale.Cluster, ccfg.Autoscale.Provider = &cc, prov
	}
	if elector != nil {
		ccfg.Autoscale.Leading = elector.Leading
	}
	ccfg.Classes = classes
	ccfg.ID = cfg.ID
	ccfg.HeartbeatTimeout = cfg.HeartbeatTimeout
	dialOpts := workerrpc.ClientAuth(token)
	ccfg.Dial = func(ctx context.Context, addr string) (controller.RemoteWorker, error) {
		return workerrpc.Dial(ctx, addr, dialOpts...)
	}
	promReg := prometheus.NewRegistry()
	ccfg.Metrics = metrics.New(promReg, func() []worker.Status { return ctrl.WorkerStates() })
	ctrl, err = controller.New(ccfg, store, nil, log.With("component", "controller"))
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

	var keys *api.Keys
	if cfg.Auth != "" {
		if keys, err = api.LoadKeys(cfg.Auth); err != nil {
			return err
		}
		if cfg.RateLimit > 0 {
			keys.WithRateLimit(cfg.RateLimit, int(math.Ceil(2*cfg.RateLimit)))
		}
	}
	mux := http.NewServeMux()
	bodies := api.NewBodyBudget(cfg.MaxBodyMemory)
	(&api.Management{Store: store, Registrar: reg, MaxUploadBytes: cfg.MaxUpload, Bodies: bodies, Log: log,
		Decisions: func() any { return ctrl.Decisions() }, Workers: func() any { return ctrl.Workers() }, Events: ctrl.Events()}).Register(mux)
	api.RegisterHealth(mux, ctrl)
	api.RegisterInferenceBudget(mux, ctrl, maxInferBody, bodies)
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}

	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// Stream workers reuse goroutines (and their grown stacks) across calls.
	gopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxInferBody), grpc.MaxSendMsgSize(maxInferBody), grpc.NumStreamWorkers(uint32(runtime.NumCPU())),
		grpc.ChainUnaryInterceptor(api.RecoverUnary(log))}
	if tlsCfg != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	if keys != nil {
		gopts = append(gopts, grpc.ChainUnaryInterceptor(keys.UnaryInterceptor()), grpc.ChainStreamInterceptor(keys.StreamInterceptor()))
	}
	gs := grpc.NewServer(gopts...)
	inferencepb.RegisterGRPCInferenceServiceServer(gs, api.NewInferenceServer(ctrl).WithBodyBudget(bodies))
	// The worker plane has its own listener and token; it is never on the
	// public port.
	cs := grpc.NewServer(workerrpc.ServerAuth(token)...)
	workerpb.RegisterRegistryServer(cs, workerrpc.NewRegistryServer(ctrl))

	// Timeouts bound what a slow client can hold: its headers 10 s, its
	// whole request (a registration upload included) --http-read-timeout,
	// the request and its answer --http-write-timeout (a client that does
	// not read its answer; the event stream clears its own deadline), an
	// idle keep-alive connection 2 minutes.
	var handler http.Handler = mux
	if keys != nil {
		handler = keys.HTTP(mux)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: cfg.HTTPReadTimeout, WriteTimeout: cfg.HTTPWriteTimeout, IdleTimeout: 2 * time.Minute,
		TLSConfig: tlsCfg}
	servers := []*http.Server{srv}
	httpLns := []net.Listener{ln}
	if cfg.Metrics != "" {
		mln, err := lns.listen(cfg.Metrics, "--metrics (or --metrics '' to disable)")
		if err != nil {
			return err
		}
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}))
		servers = append(servers, &http.Server{Handler: mmux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute})
		httpLns = append(httpLns, mln)
	}

	log.Info("infaas serving", "tls", tlsCfg != nil, "http", ln.Addr().String(), "grpc", gln.Addr().String(), "cluster", cln.Addr().String(),
		"metrics", cfg.Metrics, "data", cfg.Data, "store", cfg.Store, "repository", repo.URL(), "onnxruntime", executor.Version(),
		"class", refClass.Name, "policy", ctrl.Policy(), "local_workers", cfg.Workers)

	// Shutdown runs in reverse: servers stop taking requests, then the
	// workers stop (replicas drain), then the controller and registrar.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return reg.Run(gctx) })
	g.Go(func() error { return ctrl.Run(gctx) })
	for i, hs := range servers {
		g.Go(func() error {
			serve := hs.Serve
			if hs.TLSConfig != nil { // the public port with --tls-cert (the certificate is in TLSConfig)
				serve = func(l net.Listener) error { return hs.ServeTLS(l, "", "") }
			}
			if err := serve(httpLns[i]); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error { return gs.Serve(gln) })
	g.Go(func() error { return cs.Serve(cln) })
	if prov != nil {
		g.Go(func() error { return prov.Run(gctx) })
		for _, h := range localClasses {
			if _, err := prov.Start(gctx, h); err != nil {
				return err
			}
		}
	}
	if elector != nil {
		g.Go(func() error { return elector.Run(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		ctrl.Events().Close() // ends the streams following the event log
		gs.GracefulStop()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		for _, hs := range servers {
			err = errors.Join(err, hs.Shutdown(sctx))
		}
		cs.Stop()
		return err
	})
	lns.release()
	if ready != nil {
		if len(localClasses) > 0 {
			waitReady(gctx, ctrl)
		}
		scheme := "http://"
		if tlsCfg != nil {
			scheme = "https://"
		}
		ready <- serverAddrs{HTTP: scheme + ln.Addr().String(), GRPC: gln.Addr().String(), Cluster: cln.Addr().String()}
	}
	err = g.Wait()
	log.Info("infaas stopped")
	return err
}

// waitReady waits until a worker has joined (the controller is ready).
func waitReady(ctx context.Context, ctrl *controller.Controller) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !ctrl.Ready(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// listeners closes what it opened unless released (on a failed start).
type listeners struct{ ls []net.Listener }

func (l *listeners) listen(addr, flagName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another infaas or Triton running? pick another address with %s)", addr, err, flagName)
	}
	l.ls = append(l.ls, ln)
	return ln, nil
}

func (l *listeners) release() { l.ls = nil }

func (l *listeners) closeAll() {
	for _, ln := range l.ls {
		ln.Close()
	}
}

// checkPlane refuses a worker-plane address (flag) beyond loopback without
// a cluster token: whoever reaches it could load, unload and run models on
// the workers, or join as a worker. With insecure it only warns.
func checkPlane(flag, addr, token string, insecure bool, log *slog.Logger) error {
	if token != "" || isLoopback(addr) {
		return nil
	}
	if !insecure {
		return fmt.Errorf("%s %s listens beyond this machine without a cluster token: set --token-file FILE or $%s (the same token on every controller and worker), or pass --insecure to accept an open worker plane",
			flag, addr, workerrpc.TokenEnv)
	}
	log.Warn("the worker plane is open: no cluster token on a non-loopback address (--insecure)", "address", addr)
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverAddrs are where a started server listens.
type serverAddrs struct{ HTTP, GRPC, Cluster string }
