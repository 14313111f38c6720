package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/infaas/infaas/catalog"
)

// Paper hardware: the INFaaS paper's AWS instance types at its prices. The
// CPU instance is an 8-vCPU class ($0.384/h, the price
// catalog.CPUClass(8) already charges); the GPU one a V100
// (p3.2xlarge, $3.06/h); the Inferentia one a single chip (inf1.xlarge,
// $0.362/h).
var (
	PaperCPU = catalog.CPUClass(8)
	PaperGPU = catalog.HardwareClass{Name: "gpu-v100", Provider: "cuda", Cores: 8, MemoryBytes: 16 << 30, Accelerators: 1, PricePerHour: 3.06}
	PaperInf = catalog.HardwareClass{Name: "inf1", Provider: "neuron", Cores: 4, MemoryBytes: 8 << 30, Accelerators: 1, PricePerHour: 0.362}
)

// Derivation rules for hardware that is not here. They are assumptions,
// not measurements, and every run that uses them lists them
// (Result.Assumptions). The speed-ups are coarse, in line with published
// MLPerf-style comparisons of one V100 or one Inferentia chip against one
// server CPU core for small CNNs; change them here.
const (
	gpuSpeedup  = 8.0 // one V100 vs one CPU core at batch 1
	gpuFixedMs  = 1.0 // kernel launch and host↔device copies per batch
	gpuPerBatch = 0.08
	gpuMaxBatch = 32
	gpuLoadMs   = 3000.0
	infSpeedup  = 4.0 // one Inferentia chip vs one CPU core at batch 1
	infFixedMs  = 0.5
	infPerBatch = 0.25
	infMaxBatch = 8
	infLoadMs   = 2000.0
)

// Derive extends the registered variants to the paper's hardware:
//
//   - every variant profiled on a CPU class gets a profile on PaperCPU
//     equal to its profile on the CPU class with the fewest cores it was
//     measured on (a core of the cloud instance runs like a core here; the
//     variant occupies as many of the 8 cores as it has threads);
//   - every architecture's fastest fp32 variant at batch 1 gets a GPU and
//     an Inferentia variant: batch-1 median = its CPU median ÷ the
//     speed-up + a fixed cost per batch, growing by a fraction of that per
//     extra sample, p99 in the CPU profile's p99/p50 ratio, accuracy
//     unchanged.
//
// It returns the extended variants (the input is not modified) and the
// assumptions it made, one line each with its source.
func Derive(vs []catalog.Variant, classes []catalog.HardwareClass) ([]catalog.Variant, []string) {
	has := func(h catalog.HardwareClass) bool {
		return slices.ContainsFunc(classes, func(c catalog.HardwareClass) bool { return c.Name == h.Name })
	}
	cpuCores := map[string]int{}
	for _, c := range classes {
		if c.Provider == "cpu" {
			cpuCores[c.Name] = c.Cores
		}
	}
	out := make([]catalog.Variant, 0, len(vs)+2)
	var notes []string
	best := map[string]int{} // architecture → index in out of its fastest fp32 CPU variant
	for _, v := range vs {
		v.Profiles = maps.Clone(v.Profiles)
		if has(PaperCPU) {
			if _, ok := v.ProfileOn(PaperCPU.Name); !ok {
				if p, from, ok := smallestCPUProfile(v, cpuCores); ok && from != PaperCPU.Name {
					if v.Profiles == nil {
						v.Profiles = map[string]catalog.Profile{}
					}
					v.Profiles[PaperCPU.Name] = p
				}
			}
		}
		out = append(out, v)
		if v.Precision == "fp32" && (v.Provider == "" || v.Provider == "cpu") {
			if i, ok := best[v.Architecture]; !ok || v.Profile.P50At(1) < out[i].Profile.P50At(1) {
				best[v.Architecture] = len(out) - 1
			}
		}
	}
	if has(PaperCPU) {
		notes = append(notes, fmt.Sprintf("%s (8 vCPU, $%.3f/h): a variant runs as on the smallest CPU class it was profiled on here (assumption: a cloud vCPU runs like a core here; source: sim/hardware.go)",
			PaperCPU.Name, PaperCPU.PricePerHour))
	}
	archs := slices.Sorted(maps.Keys(best))
	for _, a := range archs {
		base := out[best[a]]
		if has(PaperGPU) {
			out = append(out, accelerated(base, PaperGPU, gpuSpeedup, gpuFixedMs, gpuPerBatch, gpuMaxBatch, gpuLoadMs))
		}
		if has(PaperInf) {
			out = append(out, accelerated(base, PaperInf, infSpeedup, infFixedMs, infPerBatch, infMaxBatch, infLoadMs))
		}
	}
	if len(archs) > 0 && has(PaperGPU) {
		notes = append(notes, fmt.Sprintf("%s ($%.2f/h): derived from each architecture's fastest fp32 CPU variant — batch-1 median ÷ %.0f + %.1f ms, +%.0f%% per extra sample, max batch %d, load %.0f s (assumption, not measured; source: sim/hardware.go)",
			PaperGPU.Name, PaperGPU.PricePerHour, gpuSpeedup, gpuFixedMs, 100*gpuPerBatch, gpuMaxBatch, gpuLoadMs/1000))
	}
	if len(archs) > 0 && has(PaperInf) {
		notes = append(notes, fmt.Sprintf("%s ($%.3f/h): derived the same way — ÷ %.0f + %.1f ms, +%.0f%% per extra sample, max batch %d, load %.0f s (assumption, not measured; source: sim/hardware.go)",
			PaperInf.Name, PaperInf.PricePerHour, infSpeedup, infFixedMs, 100*infPerBatch, infMaxBatch, infLoadMs/1000))
	}
	return out, notes
}

// smallestCPUProfile is v's profile on the CPU class with the fewest cores.
func smallestCPUProfile(v catalog.Variant, cpuCores map[string]int) (catalog.Profile, string, bool) {
	from, cores := "", 0
	for _, c := range v.ProfiledClasses() {
		if n, ok := cpuCores[c]; ok && (from == "" || n < cores) {
			from, cores = c, n
		}
	}
	if from == "" {
		return catalog.Profile{}, "", false
	}
	p, _ := v.ProfileOn(from)
	return p, from, true
}

// accelerated derives base's variant on accelerator class h.
func accelerated(base catalog.Variant, h catalog.HardwareClass, speedup, fixedMs, perBatch float64, maxBatch int, loadMs float64) catalog.Variant {
	p50 := base.Profile.P50At(1)
	ratio := 1.2
	if p99 := base.Profile.P99At(1); p50 > 0 && p99 > p50 {
		ratio = p99 / p50
	}
	one := p50/speedup + fixedMs
	lat := map[int]catalog.Latency{}
	for b := 1; b <= maxBatch; b *= 2 {
		m := one * (1 + perBatch*float64(b-1))
		lat[b] = catalog.Latency{P50: m, P99: m * ratio}
	}
	prof := catalog.Profile{LoadMs: loadMs, PeakMemoryBytes: base.Profile.PeakMemoryBytes, LatencyMs: lat}
	prof.ThroughputQPS = prof.ThroughputAt(maxBatch)
	v := base
	v.Provider, v.Hardware, v.Threads, v.MaxBatch = h.Provider, h.Name, 1, maxBatch
	v.Name = catalog.VariantName(base.Architecture, base.Precision, base.OptLevel, 1, maxBatch, h.Provider)
	v.Profile, v.Profiles = prof, nil
	v.AccuracySource = strings.TrimSpace(base.AccuracySource + " (as " + base.Name + ")")
	return v
}
