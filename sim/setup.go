package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/policies"
	"github.com/infaas/infaas/workload"
)

// Setup is an experiment: a catalogue, the hardware it runs on, a
// cluster, a workload. Config turns it into one run per policy, so every
// policy of a comparison faces the same load, seed and hardware.
type Setup struct {
	Catalog Catalog
	// Hardware is "paper" (the INFaaS paper's instance types, with
	// profiles derived for the hardware not here; see Derive) or "local"
	// (the catalogue's own classes, as measured here).
	Hardware string
	// Workers are the classes of the workers at the start; MaxWorkers
	// lets the cluster autoscaler add workers up to that many (0: none).
	Workers    []string
	MaxWorkers int
	// Workload is a loadgen schedule (workload.ScheduleHelp); Mix the
	// requirement sets (nil: DefaultMix).
	Workload string
	Mix      workload.Mix
	Seed     uint64
	// Noise is Config.Noise (1: the profiles' own spread).
	Noise float64
	// ServiceShape and ServiceShapeBlock are Config's.
	ServiceShape      []float64
	ServiceShapeBlock float64
	// Overrides of DefaultConfig; zero values keep the defaults.
	Overhead    time.Duration
	OverheadP99 time.Duration
	// OverheadSample is Config.OverheadSample.
	OverheadSample []time.Duration
	Interference   []Interference
	// HostCPUPerQuery is Config.HostCPUPerQuery (0: workers on their own
	// machines).
	HostCPUPerQuery time.Duration
	// HostCPUBase is Config.HostCPUBase.
	HostCPUBase time.Duration
	// ComputeScale is Config.ComputeScale (0: as profiled).
	ComputeScale float64
	// Provision is Config.Provision: replicas loaded before the first
	// query (variant name → count), e.g. the state a live cluster is in
	// when a simulation takes over from it. A policy that provisions
	// statically (Clipper+) replaces it with its own.
	Provision map[string]int
	Models    *autoscale.Config
}

// Comparison is the policies a --compare runs: infaas, infaas without
// vertical scaling, and the paper's SM+ and Clipper+ baselines.
var Comparison = []string{"infaas", "infaas-novertical", "sm+", "clipper+"}

// Config is the run of policy on s.
func (s Setup) Config(policy string) (Config, error) {
	cfg := DefaultConfig()
	p, err := policies.Lookup(policy)
	if err != nil {
		return Config{}, err
	}
	cfg.Policy = p
	cfg.Seed = max(s.Seed, 1)
	cfg.Noise = s.Noise
	cfg.ServiceShape, cfg.ServiceShapeBlock = s.ServiceShape, s.ServiceShapeBlock
	if s.Overhead > 0 {
		cfg.Overhead = s.Overhead
	}
	cfg.OverheadP99 = s.OverheadP99
	cfg.OverheadSample = s.OverheadSample
	if s.Models != nil {
		cfg.Models = *s.Models
	}
	cfg.Interference = s.Interference
	cfg.HostCPUPerQuery = s.HostCPUPerQuery
	cfg.HostCPUBase = s.HostCPUBase
	cfg.ComputeScale = s.ComputeScale
	cfg.Provision = s.Provision
	cfg.Architectures = s.Catalog.Architectures
	switch s.Hardware {
	case "paper":
		cfg.Classes = []catalog.HardwareClass{PaperCPU, PaperGPU, PaperInf}
		for _, h := range localClasses(s.Catalog) {
			if _, dup := catalog.FindClass(cfg.Classes, h.Name); !dup {
				cfg.Classes = append(cfg.Classes, h)
			}
		}
		cfg.Variants, cfg.Assumptions = Derive(s.Catalog.Variants, cfg.Classes)
	case "local", "":
		cfg.Classes = localClasses(s.Catalog)
		cfg.Variants = s.Catalog.Variants
	default:
		return Config{}, fmt.Errorf("hardware %q: want paper or local", s.Hardware)
	}
	cfg.Workers = s.Workers
	if len(cfg.Workers) == 0 {
		if s.Hardware == "paper" {
			cfg.Workers = []string{PaperCPU.Name, PaperCPU.Name}
		} else {
			h := s.Catalog.Variants[0].Hardware // a class the catalogue was profiled on
			cfg.Workers = []string{h, h}
		}
	}
	if cfg.Schedule, err = workload.ParseSchedule(s.Workload); err != nil {
		return Config{}, err
	}
	if tr, ok := cfg.Schedule.(workload.Trace); ok {
		cfg.Trace = &tr
	}
	cfg.Mix = s.Mix
	if len(cfg.Mix) == 0 {
		cfg.Mix = DefaultMix(s.Catalog)
	}
	if s.MaxWorkers > len(cfg.Workers) {
		cc := autoscale.DefaultClusterConfig()
		cc.MinWorkers, cc.MaxWorkers = len(cfg.Workers), s.MaxWorkers
		cfg.Cluster = &cc
	}
	if p.Models(cfg.Models).Static {
		// Clipper+: statically provisioned for the peak, no cluster
		// autoscaling; workers are added up front as the replicas need.
		cfg.Cluster = nil
		if cfg.Provision, err = ProvisionForPeak(cfg); err != nil {
			return Config{}, err
		}
		cfg.GrowToProvision = true
	}
	return cfg, nil
}

// localClasses are the catalogue's classes, or the built-in ones.
func localClasses(c Catalog) []catalog.HardwareClass {
	if len(c.Classes) > 0 {
		return slices.Clone(c.Classes)
	}
	return catalog.DefaultClasses()
}

// Compare runs every policy on s (in order) and returns their results.
func Compare(s Setup, names []string) ([]*Result, error) {
	out := make([]*Result, 0, len(names))
	for _, n := range names {
		cfg, err := s.Config(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		r, err := Run(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		r.Workload = s.Workload
		out = append(out, r)
	}
	return out, nil
}
