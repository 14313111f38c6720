package variants

import (
	"fmt"
	"sort"
	"strings"

	"github.com/infaas/infaas/catalog"
)

// Tolerance says how far apart two measurements must be to count as
// different; closer than that they are equal within measurement noise.
type Tolerance struct {
	Latency     float64 // relative, e.g. 0.10
	Throughput  float64 // relative
	Memory      float64 // relative
	MemoryBytes int64   // absolute slack added to the relative one
	File        float64 // relative
}

// DefaultTolerance suits millisecond latencies measured for ~100 ms.
var DefaultTolerance = Tolerance{Latency: 0.10, Throughput: 0.10, Memory: 0.10, MemoryBytes: 512 << 10, File: 0.01}

// Costed is a variant with its price on its hardware class.
type Costed struct {
	catalog.Variant
	CostPerHour float64
}

type cmp int

const (
	worse cmp = iota - 1
	equal
	better
)

// compare says whether x is better, equal or worse than y where smaller is
// better, with relative tolerance rel plus absolute slack abs.
func compareLow(x, y, rel, abs float64) cmp {
	switch {
	case x < y*(1-rel)-abs:
		return better
	case x > y*(1+rel)+abs:
		return worse
	}
	return equal
}

// compareHigh is compareLow for dimensions where larger is better.
func compareHigh(x, y, rel, abs float64) cmp {
	switch {
	case x > y*(1+rel)+abs:
		return better
	case x < y*(1-rel)-abs:
		return worse
	}
	return equal
}

type dimension struct {
	name string
	cmp  func(a, b Costed) cmp
	show func(v Costed) string
}

func dimensions(t Tolerance) []dimension {
	return []dimension{
		{"accuracy", func(a, b Costed) cmp { return compareHigh(a.Accuracy, b.Accuracy, 0, 0.005) },
			func(v Costed) string { return fmt.Sprintf("%.2f%%", v.Accuracy) }},
		{"p99 latency at batch 1", func(a, b Costed) cmp {
			return compareLow(a.Profile.P99At(1), b.Profile.P99At(1), t.Latency, 0)
		}, func(v Costed) string { return fmt.Sprintf("%.3f ms", v.Profile.P99At(1)) }},
		{"p99 latency of a full batch", func(a, b Costed) cmp {
			return compareLow(a.Profile.P99At(a.MaxBatch), b.Profile.P99At(b.MaxBatch), t.Latency, 0)
		}, func(v Costed) string {
			return fmt.Sprintf("%.3f ms at batch %d", v.Profile.P99At(v.MaxBatch), v.MaxBatch)
		}},
		{"throughput", func(a, b Costed) cmp {
			return compareHigh(a.Profile.ThroughputQPS, b.Profile.ThroughputQPS, t.Throughput, 0)
		}, func(v Costed) string { return fmt.Sprintf("%.0f/s", v.Profile.ThroughputQPS) }},
		{"peak memory", func(a, b Costed) cmp {
			return compareLow(float64(a.Profile.PeakMemoryBytes), float64(b.Profile.PeakMemoryBytes), t.Memory, float64(t.MemoryBytes))
		}, func(v Costed) string { return fmt.Sprintf("%.1f MiB", float64(v.Profile.PeakMemoryBytes)/(1<<20)) }},
		{"file size", func(a, b Costed) cmp {
			return compareLow(float64(a.FileBytes), float64(b.FileBytes), t.File, 0)
		}, func(v Costed) string { return fmt.Sprintf("%d B", v.FileBytes) }},
		{"cost", func(a, b Costed) cmp { return compareLow(a.CostPerHour, b.CostPerHour, 0, 1e-12) },
			func(v Costed) string { return fmt.Sprintf("$%.4f/h", v.CostPerHour) }},
	}
}

// Prune keeps the variants no other kept variant dominates. b dominates a
// when b is at least as good on every dimension (accuracy, p99 latency at
// batch 1, p99 latency of a full batch — the worst a request waits for its
// batch —, throughput, peak memory, file size, cost) and better on one by
// more than the tolerance. Variants equal on every dimension within the
// tolerance are duplicates: the first in preference order (larger max
// batch, fp32, lower optimisation level, fewer threads) is kept.
// The result is sorted by name; each dropped variant says which one beat it.
func Prune(vs []Costed, tol Tolerance) (kept []Costed, dropped []catalog.DroppedVariant) {
	dims := dimensions(tol)
	order := append([]Costed(nil), vs...)
	sort.SliceStable(order, func(i, j int) bool { return preferred(order[i], order[j]) })

	alive := make([]bool, len(order))
	for i := range alive {
		alive[i] = true
	}
	for i, a := range order {
		for j, b := range order {
			if i == j || !alive[j] {
				continue
			}
			worseAny, betterDims := false, []string(nil)
			for _, d := range dims {
				switch d.cmp(b, a) {
				case worse:
					worseAny = true
				case better:
					betterDims = append(betterDims, fmt.Sprintf("%s %s vs %s", d.name, d.show(b), d.show(a)))
				}
				if worseAny {
					break
				}
			}
			if worseAny {
				continue
			}
			if len(betterDims) > 0 {
				alive[i] = false
				dropped = append(dropped, catalog.DroppedVariant{Name: a.Name,
					Reason: fmt.Sprintf("dominated by %s (better %s; no worse elsewhere)", b.Name, strings.Join(betterDims, ", "))})
				break
			}
			if j < i { // equal everywhere within noise: keep the preferred one
				alive[i] = false
				dropped = append(dropped, catalog.DroppedVariant{Name: a.Name,
					Reason: fmt.Sprintf("equivalent to %s within measurement noise (accuracy, latency, throughput, memory, size, cost)", b.Name)})
				break
			}
		}
	}
	for i, v := range order {
		if alive[i] {
			kept = append(kept, v)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	sort.Slice(dropped, func(i, j int) bool { return dropped[i].Name < dropped[j].Name })
	return kept, dropped
}

var optRank = map[string]int{"disabled": 0, "basic": 1, "extended": 2, "all": 3}

func preferred(a, b Costed) bool {
	if a.MaxBatch != b.MaxBatch {
		return a.MaxBatch > b.MaxBatch
	}
	if a.Precision != b.Precision {
		return a.Precision == FP32
	}
	if a.OptLevel != b.OptLevel {
		return optRank[a.OptLevel] < optRank[b.OptLevel]
	}
	if a.Threads != b.Threads {
		return a.Threads < b.Threads
	}
	return a.Name < b.Name
}
