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

// statsBook keeps what each variant served, for ModelStatistics. The
// query path touches only its variant's entry: no lock shared across
// variants.
type statsBook struct {
	m sync.Map // variant name → *statEntry
}

type statEntry struct {
	mu sync.Mutex
	s  inference.ModelStat
}

func (b *statsBook) entry(variant string) *statEntry {
	if e, ok := b.m.Load(variant); ok {
		return e.(*statEntry)
	}
	e, _ := b.m.LoadOrStore(variant, &statEntry{s: inference.ModelStat{Name: variant, Version: ModelVersion}})
	return e.(*statEntry)
}

// served records a request of samples answered in total, after queue on
// its replica, in a batch of batchSize that computed for compute.
func (b *statsBook) served(variant string, at time.Time, samples, batchSize int, total, queue, compute time.Duration) {
	e := b.entry(variant)
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &e.s
	s.LastInference = at.UnixMilli()
	s.InferenceCount += int64(samples)
	s.ExecutionCount++
	add := func(d *inference.StatDuration, ns time.Duration) { d.Count++; d.Ns += ns.Nanoseconds() }
	add(&s.InferenceStats.Success, total)
	add(&s.InferenceStats.Queue, queue)
	add(&s.InferenceStats.ComputeInfer, compute)
	i := slices.IndexFunc(s.BatchStats, func(x inference.BatchStat) bool { return x.BatchSize == batchSize })
	if i < 0 {
		i = sort.Search(len(s.BatchStats), func(k int) bool { return s.BatchStats[k].BatchSize > batchSize })
		s.BatchStats = slices.Insert(s.BatchStats, i, inference.BatchStat{BatchSize: batchSize})
	}
	add(&s.BatchStats[i].ComputeInfer, compute)
}

// failed records a request a variant was chosen for and that failed.
func (b *statsBook) failed(variant string, total time.Duration) {
	e := b.entry(variant)
	e.mu.Lock()
	e.s.InferenceStats.Fail.Count++
	e.s.InferenceStats.Fail.Ns += total.Nanoseconds()
	e.mu.Unlock()
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
	c.stats.m.Range(func(k, e any) bool {
		if covers(k.(string)) {
			se := e.(*statEntry)
			se.mu.Lock()
			cp := se.s
			cp.BatchStats = slices.Clone(se.s.BatchStats)
			se.mu.Unlock()
			out.ModelStats = append(out.ModelStats, cp)
		}
		return true
	})
	sort.Slice(out.ModelStats, func(i, j int) bool { return out.ModelStats[i].Name < out.ModelStats[j].Name })
	return out, nil
}
