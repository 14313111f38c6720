package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/selection"
)

// statsBook keeps what each variant served, for ModelStatistics.
type statsBook struct {
	mu sync.Mutex
	m  map[string]*inference.ModelStat
}

func (b *statsBook) stat(variant string) *inference.ModelStat {
	if b.m == nil {
		b.m = map[string]*inference.ModelStat{}
	}
	s := b.m[variant]
	if s == nil {
		s = &inference.ModelStat{Name: variant, Version: ModelVersion}
		b.m[variant] = s
	}
	return s
}

// served records a request of samples answered in total, after queue on
// its replica, in a batch of batchSize that computed for compute.
func (b *statsBook) served(variant string, at time.Time, samples, batchSize int, total, queue, compute time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stat(variant)
	s.LastInference = at.UnixMilli()
	s.InferenceCount += int64(samples)
	s.ExecutionCount++
	add := func(d *inference.StatDuration, ns time.Duration) { d.Count++; d.Ns += ns.Nanoseconds() }
	add(&s.InferenceStats.Success, total)
	add(&s.InferenceStats.Queue, queue)
	add(&s.InferenceStats.ComputeInfer, compute)
	i := slices.IndexFunc(s.BatchStats, func(x inference.BatchStat) bool { return x.BatchSize == batchSize })
	if i < 0 {
		s.BatchStats = append(s.BatchStats, inference.BatchStat{BatchSize: batchSize})
		sort.Slice(s.BatchStats, func(a, c int) bool { return s.BatchStats[a].BatchSize < s.BatchStats[c].BatchSize })
		i = slices.IndexFunc(s.BatchStats, func(x inference.BatchStat) bool { return x.BatchSize == batchSize })
	}
	add(&s.BatchStats[i].ComputeInfer, compute)
}

// failed records a request a variant was chosen for and that failed.
func (b *statsBook) failed(variant string, total time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := &b.stat(variant).InferenceStats.Fail
	d.Count++
	d.Ns += total.Nanoseconds()
}

// ModelStatistics answers /v2/models/{name}/stats: the statistics of every
// variant name covers (a variant, an architecture's, a use case's), by
// variant name; an empty name covers all.
func (c *Controller) ModelStatistics(ctx context.Context, name string) (inference.ModelStats, error) {
	v := c.view.Load()
	if v == nil {
		return inference.ModelStats{}, fmt.Errorf("%w: the controller is starting", ErrNotReady)
	}
	covers := func(string) bool { return true }
	if name != "" {
		n, kind, err := v.resolve(name)
		if err != nil {
			return inference.ModelStats{}, err
		}
		switch kind {
		case selection.KindVariant:
			covers = func(x string) bool { return x == n }
		case selection.KindArchitecture:
			covers = func(x string) bool { return strings.HasPrefix(x, n+".") }
		default:
			covers = func(x string) bool {
				vv, ok := v.variants[x]
				return ok && v.archs[vv.Architecture].UseCaseID() == n
			}
		}
	}
	out := inference.ModelStats{ModelStats: []inference.ModelStat{}}
	c.stats.mu.Lock()
	for variant, s := range c.stats.m {
		if covers(variant) {
			cp := *s
			cp.BatchStats = slices.Clone(s.BatchStats)
			out.ModelStats = append(out.ModelStats, cp)
		}
	}
	c.stats.mu.Unlock()
	sort.Slice(out.ModelStats, func(i, j int) bool { return out.ModelStats[i].Name < out.ModelStats[j].Name })
	return out, nil
}
