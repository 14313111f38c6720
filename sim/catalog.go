package sim

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/selection"
	"github.com/infaas/infaas/workload"
)

// Catalog is what a simulation serves: architectures with their variants
// and profiles, as a live infaas registered them, and the hardware classes.
type Catalog struct {
	// Source says where the profiles were measured.
	Source        string                  `json:"source"`
	Architectures []catalog.Architecture  `json:"architectures"`
	Variants      []catalog.Variant       `json:"variants"`
	Classes       []catalog.HardwareClass `json:"classes,omitempty"`
}

//go:embed catalogs/zoo.json
var zooCatalog []byte

//go:embed catalogs/convnets.json
var convnetsCatalog []byte

// Builtin are the catalogues compiled in, by name: "convnets" (three CNNs
// of one use case, about 0.2 to 7 ms a sample on one core — the default)
// and "zoo" (the demo's eleven MNIST and Fashion-MNIST models, tens of
// microseconds a sample), each as a live infaas registered and profiled it
// on the machine its Source names.
var Builtin = []string{"convnets", "zoo"}

// BuiltinCatalog returns the built-in catalogue called name.
func BuiltinCatalog(name string) (Catalog, error) {
	switch name {
	case "convnets":
		return parseCatalog(convnetsCatalog, "the built-in convnets catalogue")
	case "zoo":
		return parseCatalog(zooCatalog, "the built-in zoo catalogue")
	}
	return Catalog{}, fmt.Errorf("no built-in catalogue %q (built in: %v)", name, Builtin)
}

// LoadCatalog reads a catalogue file written by `infaas simulate
// --save-catalog`.
func LoadCatalog(path string) (Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Catalog{}, err
	}
	return parseCatalog(b, path)
}

func parseCatalog(b []byte, name string) (Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Catalog{}, fmt.Errorf("catalogue %s: %w", name, err)
	}
	if len(c.Variants) == 0 {
		return Catalog{}, fmt.Errorf("catalogue %s has no variants", name)
	}
	for _, v := range c.Variants {
		if len(v.Profile.LatencyMs) == 0 {
			return Catalog{}, fmt.Errorf("catalogue %s: variant %s has no profile; simulate profiled variants only", name, v.Name)
		}
	}
	return c, nil
}

// Save writes the catalogue as JSON.
func (c Catalog) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// DefaultMix is a mix over every use case of the catalogue, with mixed
// requirements: per use case, one set with a tight latency target (4× the
// best batch-1 p99 of its variants, at least 20 ms) and one with a loose
// target (20× that, at least 100 ms) that also asks for the accuracy of
// its most accurate architecture minus one point. Sets are in use-case
// order, equal weights.
func DefaultMix(c Catalog) workload.Mix {
	type uc struct {
		best, acc float64
	}
	ucs := map[string]*uc{}
	archUC := map[string]string{}
	for _, a := range c.Architectures {
		archUC[a.Name] = a.Task + "/" + a.Dataset
	}
	for _, v := range c.Variants {
		id, ok := archUC[v.Architecture]
		if !ok {
			continue
		}
		u := ucs[id]
		if u == nil {
			u = &uc{best: math.Inf(1)}
			ucs[id] = u
		}
		if p := v.Profile.P99At(1); p > 0 {
			u.best = min(u.best, p)
		}
		u.acc = max(u.acc, v.Accuracy)
	}
	ids := make([]string, 0, len(ucs))
	for id := range ucs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var m workload.Mix
	for _, id := range ids {
		u := ucs[id]
		tight := math.Round(max(20, 4*u.best))
		m = append(m, workload.RequirementSet{Weight: 1, Model: id, LatencyMs: tight},
			workload.RequirementSet{Weight: 1, Model: id, LatencyMs: max(100, 5*tight), MinAccuracy: max(0, u.acc-1)})
	}
	return m
}

// ProvisionForPeak is what a statically provisioned deployment (Clipper+)
// loads before the first query: for every requirement set of the mix, the
// variant the configured selection policy serves it with, enough replicas
// to carry the set's share of the schedule's peak rate at 80% of the
// variant's profiled throughput.
func ProvisionForPeak(cfg Config) (map[string]int, error) {
	if len(cfg.Mix) == 0 {
		return nil, errors.New("sim: no mix to provision for")
	}
	scfg, err := cfg.Policy.SelectionConfig(cfg.Fixed)
	if err != nil {
		return nil, err
	}
	pol, err := selection.Lookup(cfg.Policy.Selection, scfg)
	if err != nil {
		return nil, err
	}
	// One idle worker of every class: the policy picks what it would
	// serve each set with on any hardware; provisioning then adds the
	// workers those replicas need.
	var st selection.State
	for _, h := range cfg.Classes {
		st.Workers = append(st.Workers, selection.Worker{ID: "w-" + h.Name, Class: h, Cores: h.Cores,
			MemoryBytes: h.MemoryBytes, FreeMemoryBytes: h.MemoryBytes, Healthy: true})
	}
	snap, err := selection.NewSnapshot(selection.Catalog{Architectures: cfg.Architectures, Variants: cfg.Variants, Classes: cfg.Classes}, st)
	if err != nil {
		return nil, err
	}
	peak := 0.0
	var dur time.Duration
	if cfg.Trace != nil {
		dur = cfg.Trace.Duration()
	} else {
		dur = cfg.Schedule.Duration()
	}
	for t := time.Duration(0); t < dur; t += 100 * time.Millisecond {
		if cfg.Trace != nil {
			peak = max(peak, cfg.Trace.Rate(t))
		} else {
			peak = max(peak, cfg.Schedule.Rate(t))
		}
	}
	total := 0.0
	for _, s := range cfg.Mix {
		total += s.Weight
	}
	need := map[string]float64{}
	var d selection.Decision
	for _, s := range cfg.Mix {
		r := selection.Request{Name: s.Model, Batch: s.BatchSize(), LatencyMs: s.LatencyMs, MinAccuracy: s.MinAccuracy, MaxCostPer1k: s.MaxCost}
		pol.Select(snap, &r, time.Time{}, &d)
		v := d.Variant
		if v < 0 {
			v = d.Load
		}
		if v < 0 {
			continue
		}
		x := snap.Variant(v)
		if x.Profile.ThroughputQPS > 0 {
			need[x.Name] += peak * s.Weight / total * float64(s.BatchSize()) / (0.8 * x.Profile.ThroughputQPS)
		}
	}
	out := map[string]int{}
	for n, k := range need {
		out[n] = max(1, int(math.Ceil(k)))
	}
	return out, nil
}
