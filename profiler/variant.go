package profiler

import (
	"context"
	"fmt"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
)

// VariantProfile turns a child's measurements into the profile of the
// variant with maximum batch mb: the latencies of the batch sizes up to
// mb, throughput as the best samples per second at p50 among them, and
// the peak memory after running mb.
func VariantProfile(res Result, mb int, now time.Time) catalog.Profile {
	p := catalog.Profile{LoadMs: res.LoadMs, LatencyMs: map[int]catalog.Latency{}, Hardware: res.Hardware, ProfiledAt: now.UTC()}
	for b, l := range res.Latency {
		if b > mb {
			continue
		}
		p.LatencyMs[b] = l
		if l.P50 > 0 {
			p.ThroughputQPS = max(p.ThroughputQPS, float64(b)*1000/l.P50)
		}
	}
	p.PeakMemoryBytes = res.PeakMemory[mb]
	return p
}

// ProfileBatches are the batch sizes a variant with maximum batch mb is
// measured at: 1, 4, 8, 16, 32 up to mb, and mb itself.
func ProfileBatches(mb int) []int {
	var out []int
	for _, b := range []int{1, 4, 8, 16, 32} {
		if b < mb {
			out = append(out, b)
		}
	}
	return append(out, mb)
}

// MeasureVariant profiles variant v (whose graph is model) on this
// machine — in a child process, like every ONNX Runtime call the
// profiler makes — on synthetic inputs at every batch size up to its max
// batch. A worker calls it to measure a variant on its own hardware
// class: the child inherits the worker's CPU affinity.
func (p *Profiler) MeasureVariant(ctx context.Context, model []byte, v catalog.Variant, a catalog.Architecture) (catalog.Profile, error) {
	if v.MaxBatch < 1 {
		return catalog.Profile{}, fmt.Errorf("profile %s: max batch %d", v.Name, v.MaxBatch)
	}
	wd, err := NewWorkdir()
	if err != nil {
		return catalog.Profile{}, err
	}
	defer wd.Close()
	mp, err := wd.Write("model.onnx", model)
	if err != nil {
		return catalog.Profile{}, err
	}
	job, err := SyntheticInputs(a, min(v.MaxBatch, 32)).Write(wd, Job{Kind: KindProfile, ModelPath: mp,
		Options: executor.Options{OptLevel: v.OptLevel, Threads: v.Threads, Provider: v.Provider},
		Batches: ProfileBatches(v.MaxBatch)})
	if err != nil {
		return catalog.Profile{}, err
	}
	res, err := p.Run(ctx, job)
	if err != nil {
		return catalog.Profile{}, fmt.Errorf("profile %s: %w", v.Name, err)
	}
	return VariantProfile(res, v.MaxBatch, time.Now()), nil
}
