package variants

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/infaas/infaas/catalog"
)

// Tolerance says how far apart two measurements must be to count as
// different; closer than that they are equal within measurement noise.
// Measured latencies and throughputs are compared with their noise on top:
// p99s that carry confidence bounds (catalog.Latency's P99Low and P99High)
// must differ by the Latency tolerance at the intervals' ends, and
// throughputs by the Throughput tolerance beyond the p50s' noise margins
// (see Prune).
type Tolerance struct {
	Latency     float64 // relative, e.g. 0.10
	Throughput  float64 // relative
	Memory      float64 // relative
	MemoryBytes int64   // absolute slack added to the relative one
	File        float64 // relative
	// LatencyFloorMs: p99s closer than this are equal whatever their
	// intervals say — below what the serving path itself adds to a
	// request, no client can tell them apart, and microsecond models
	// measured in separate processes differ by more than their
	// intervals from one registration to the next.
	LatencyFloorMs float64
	// SampleFloorMs is the same for throughput, as time per sample:
	// replicas whose samples take within this of each other are equal.
	SampleFloorMs float64
}

// DefaultTolerance suits millisecond latencies measured for ~100 ms.
// The floors: BenchmarkServe measures the HTTP path adding about 100 µs
// at p50 and the gRPC path tens of µs; 50 µs and 5 µs a sample (200,000
// samples a second, beyond what one front end forwards) are below both.
var DefaultTolerance = Tolerance{Latency: 0.10, Throughput: 0.10, Memory: 0.10, MemoryBytes: 4 << 20, File: 0.01,
	LatencyFloorMs: 0.5, SampleFloorMs: 0.01}

// Costed is a variant with its price on its hardware class.
type Costed struct {
	catalog.Variant
	CostPerHour float64
	// Prune sets Variant.KeptBecause on a kept variant that another one
	// dominates (and clears it on every other).
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

// compareP99 compares the p99 latency of x at batch bx with y's at batch by.
// Without confidence bounds on both sides (catalog.Latency's P99Low and
// P99High, measured at exactly those batch sizes) it is compareLow of the
// point estimates within the relative tolerance rel. With them it is
// compareLow of the interval ends: x is better only when its upper bound is
// more than the tolerance below y's lower bound (x.P99High < y.P99Low ×
// (1 − rel)), worse only when its lower bound is more than the tolerance
// above y's upper bound. A difference then counts only when it is real
// (the intervals are apart; each end fails with probability ≤ 2.5 %, so
// at most 5 %) and material (beyond the tolerance even at the intervals'
// ends); a point estimate that strays past the tolerance on noise alone
// decides nothing.
func compareP99(x, y catalog.Profile, bx, by int, rel, floor float64) cmp {
	if math.Abs(x.P99At(bx)-y.P99At(by)) <= floor {
		return equal
	}
	lx, okx := x.LatencyMs[bx]
	ly, oky := y.LatencyMs[by]
	if !okx || !oky || !hasBounds(lx) || !hasBounds(ly) {
		return compareLow(x.P99At(bx), y.P99At(by), rel, 0)
	}
	switch {
	case lx.P99High < ly.P99Low*(1-rel):
		return better
	case lx.P99Low > ly.P99High*(1+rel):
		return worse
	}
	return equal
}

// medianMargin is the relative noise margin of the p50 that gives a
// profile its throughput (the batch size ≤ maxBatch with the most samples
// per second at p50, as profiler.VariantProfile picks it), 0 when the
// profile does not record its spread. catalog.Latency holds no p50 interval,
// so the margin is derived: the sample median lies, with 95 % confidence,
// between the true quantiles 0.5 ± δ, δ = 1.96 × 0.5 ÷ √n; for a latency
// distribution with a single mode at or below its median (right-skewed,
// as latencies are) the quantile function is no steeper there than on
// average between the p50 and the p99, so the median is off by at most
// δ ÷ 0.49 × (P99 − P50) = δ ÷ 0.49 × Spread × P50. That is about 2 to 3
// times the median's actual noise for lognormal-like latencies: a cautious
// margin, as pruning needs.
func medianMargin(p catalog.Profile, maxBatch int) float64 {
	best, at := 0.0, catalog.Latency{}
	for b, l := range p.LatencyMs {
		if b <= maxBatch && l.P50 > 0 {
			if t := float64(b) / l.P50; t > best {
				best, at = t, l
			}
		}
	}
	if at.Samples < 1 || !(at.Spread > 0) {
		return 0
	}
	delta := 1.96 * 0.5 / math.Sqrt(float64(at.Samples))
	return min(delta/0.49*at.Spread, 0.5)
}

// compareThroughput compares throughputs within the relative tolerance rel
// widened by each side's medianMargin: x is better only when x's lowest
// plausible throughput beats y's highest by more than the tolerance. With
// no margins (profiles without a recorded spread) it is compareHigh.
func compareThroughput(x, y Costed, rel, floorMs float64) cmp {
	tx, ty := x.Profile.ThroughputQPS, y.Profile.ThroughputQPS
	if tx > 0 && ty > 0 && math.Abs(1000/tx-1000/ty) <= floorMs {
		return equal
	}
	mx, my := medianMargin(x.Profile, x.MaxBatch), medianMargin(y.Profile, y.MaxBatch)
	switch {
	case tx*(1-mx) > ty*(1+my)*(1+rel):
		return better
	case tx*(1+mx) < ty*(1-my)*(1-rel):
		return worse
	}
	return equal
}

// hasBounds: l carries a two-sided confidence interval of its p99.
func hasBounds(l catalog.Latency) bool {
	return l.P99Low > 0 && l.P99High >= l.P99Low
}

// showP99 prints the p99 at batch b, with its interval when it has one.
func showP99(p catalog.Profile, b int) string {
	s := fmt.Sprintf("%.3f ms", p.P99At(b))
	if l, ok := p.LatencyMs[b]; ok && hasBounds(l) {
		s += fmt.Sprintf(" (95%% CI %.3f–%.3f)", l.P99Low, l.P99High)
	}
	return s
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
		// Fidelity to the fp32 graph counts on its own: without a known
		// accuracy, a variant that answers differently is not as good.
		{"fidelity loss", func(a, b Costed) cmp { return compareLow(fidelityLoss(a), fidelityLoss(b), 0, 0.005) },
			func(v Costed) string { return fmt.Sprintf("%.3f points", fidelityLoss(v)) }},
		{"p99 latency at batch 1", func(a, b Costed) cmp {
			return compareP99(a.Profile, b.Profile, 1, 1, t.Latency, t.LatencyFloorMs)
		}, func(v Costed) string { return showP99(v.Profile, 1) }},
		{"p99 latency of a full batch", func(a, b Costed) cmp {
			return compareP99(a.Profile, b.Profile, a.MaxBatch, b.MaxBatch, t.Latency, t.LatencyFloorMs)
		}, func(v Costed) string {
			return fmt.Sprintf("%s at batch %d", showP99(v.Profile, v.MaxBatch), v.MaxBatch)
		}},
		{"throughput", func(a, b Costed) cmp { return compareThroughput(a, b, t.Throughput, t.SampleFloorMs) },
			func(v Costed) string { return fmt.Sprintf("%.0f/s", v.Profile.ThroughputQPS) }},
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
//
// The p99 latencies are compared with their own uncertainty (compareP99):
// when both carry confidence bounds, one is better only when the intervals
// are apart as well as the point estimates beyond the tolerance, so two
// profiles of the same variants on the same idle machine keep the same
// set. Throughput, from p50s, is compared within the tolerance widened by
// the p50s' noise margin (compareThroughput); the other dimensions, which
// do not come from timing, within the tolerance alone.
//
// A variant with the largest max batch among vs is dropped only for one
// with that max batch too: else no kept variant could serve the model's
// largest batches. Such a variant, kept although a smaller-batch one
// dominates it, says so in KeptBecause.
//
// The result is sorted by name; each dropped variant says which one beat it.
func Prune(vs []Costed, tol Tolerance) (kept []Costed, dropped []catalog.DroppedVariant) {
	dims := dimensions(tol)
	order := append([]Costed(nil), vs...)
	sort.SliceStable(order, func(i, j int) bool { return preferred(order[i], order[j]) })
	largest := 0
	for i := range order {
		largest = max(largest, order[i].MaxBatch)
		order[i].KeptBecause = ""
	}

	alive := make([]bool, len(order))
	keptBy := make([]int, len(order)) // the dominator a kept variant's KeptBecause names; -1: none
	for i := range alive {
		alive[i], keptBy[i] = true, -1
	}
	for i, a := range order {
		for j, b := range order {
			if i == j || !alive[j] {
				continue
			}
			betterDims, noWorse := beats(dims, b, a)
			if !noWorse {
				continue
			}
			if len(betterDims) > 0 {
				if a.MaxBatch == largest && b.MaxBatch < largest {
					if keptBy[i] < 0 {
						keptBy[i] = j
						order[i].KeptBecause = keptDominated(a, b, betterDims)
					}
					continue
				}
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
	// A kept variant's reason names a variant that is itself kept: the one
	// it named may have been dropped after, for a third. Name a kept one
	// that dominates it, or, where none does, say nothing.
	for i := range order {
		if !alive[i] || keptBy[i] < 0 || alive[keptBy[i]] {
			continue
		}
		order[i].KeptBecause = ""
		for j, b := range order {
			if !alive[j] || j == i || b.MaxBatch >= largest {
				continue
			}
			if betterDims, noWorse := beats(dims, b, order[i]); noWorse && len(betterDims) > 0 {
				order[i].KeptBecause = keptDominated(order[i], b, betterDims)
				break
			}
		}
	}
	keepExact(order, alive, &dropped, tol)
	for i, v := range order {
		if alive[i] {
			kept = append(kept, v)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	sort.Slice(dropped, func(i, j int) bool { return dropped[i].Name < dropped[j].Name })
	return kept, dropped
}

// beats compares b with a on dims: noWorse when b is worse on none, and
// the dimensions b is better on, worded for a reason.
func beats(dims []dimension, b, a Costed) (betterDims []string, noWorse bool) {
	for _, d := range dims {
		switch d.cmp(b, a) {
		case worse:
			return nil, false
		case better:
			betterDims = append(betterDims, fmt.Sprintf("%s %s vs %s", d.name, d.show(b), d.show(a)))
		}
	}
	return betterDims, true
}

// keptDominated is the KeptBecause of a, which b dominates on betterDims
// but cannot replace: a serves larger batches.
func keptDominated(a, b Costed, betterDims []string) string {
	return fmt.Sprintf("dominated by %s (better %s) but kept: it serves batches up to %d, %s only up to %d",
		b.Name, strings.Join(betterDims, ", "), a.MaxBatch, b.Name, b.MaxBatch)
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

// fidelityLoss is a variant's accuracy loss against the fp32 graph, 0 when
// not measured.
func fidelityLoss(v Costed) float64 {
	if v.Fidelity == nil {
		return 0
	}
	return v.Fidelity.Loss()
}

// keepExact keeps the exact model available: when every fp32 variant was
// dropped (dominated by lower-precision ones), the fp32 variant with the
// largest max batch, then the lowest p99 at batch 1 within noise (of
// equally fast ones the preferred), stays, saying why.
// A client that pins the original precision, or needs answers identical
// to the model it registered, always has one to ask for.
func keepExact(order []Costed, alive []bool, dropped *[]catalog.DroppedVariant, tol Tolerance) {
	var cands []int
	for i, v := range order {
		if v.Precision != FP32 {
			continue
		}
		if alive[i] {
			return
		}
		cands = append(cands, i)
	}
	if len(cands) == 0 {
		return
	}
	// The largest max batch; of those, the first in preference order whose
	// p99 at batch 1 no other beats beyond noise (compareP99). A point
	// estimate would pick between equally fast graphs on noise, and the
	// kept name would change from one registration to the next.
	largest := 0
	for _, i := range cands {
		largest = max(largest, order[i].MaxBatch)
	}
	best := -1
	for _, i := range cands {
		if order[i].MaxBatch != largest {
			continue
		}
		beaten := false
		for _, j := range cands {
			if j != i && order[j].MaxBatch == largest && compareP99(order[j].Profile, order[i].Profile, 1, 1, tol.Latency, tol.LatencyFloorMs) == better {
				beaten = true
				break
			}
		}
		if !beaten {
			best = i
			break
		}
	}
	if best < 0 {
		return
	}
	alive[best] = true
	name := order[best].Name
	for k, d := range *dropped {
		if d.Name == name {
			order[best].KeptBecause = "kept as the exact (fp32) model, though " + d.Reason
			*dropped = append((*dropped)[:k], (*dropped)[k+1:]...)
			break
		}
	}
}
