package profiler

import (
	"math"
	"sort"

	"github.com/infaas/infaas/catalog"
)

// Statistics of latency samples: what a profile records per batch size,
// when enough samples have been taken, and how a profiling budget is
// spent.
//
// The p99's confidence interval is distribution-free. Among n independent
// samples, the number B that fall at or below the true p99 is
// binomial(n, 0.99) (at least that, with ties), so for order statistics
// x_(l) ≤ x_(u) of the sorted samples
//
//	P(x_(l) > p99) ≤ P(B < l)   and   P(x_(u) < p99) ≤ P(B ≥ u).
//
// OrderBounds picks l and u equal-tailed: each tail at most (1 − 0.95)/2,
// so the interval holds the true p99 with probability ≥ 95 % and each end
// alone is a one-sided 97.5 % bound. That per-end guarantee is what makes
// pruning sound: variants.Prune claims "x's p99 is below y's" only when
// x's upper bound is below y's lower bound (by its tolerance, even), which
// is wrong with probability at most 2.5 % + 2.5 %. One-sided 95 % bounds
// would exist a little sooner (n ≥ 299 instead of 368) but leave a
// comparison of two variants only 90 % and the catalog no interval it
// could call 95 %; they are not used.
//
// The upper end needs P(B = n) = 0.99ⁿ ≤ 2.5 %, that is n ≥ BoundRuns
// (368) samples; with fewer, no sample is a 97.5 % upper bound of the p99
// and P99High is 0 while P99Low (a valid lower bound from n = 1 on) is
// still set. Pruning then falls back to its relative tolerance. From 368
// to 554 samples the upper bound is the largest sample (wide, and
// creeping up with n); from 555 on it is an inner order statistic and the
// interval narrows steadily, to about ±1 % of a typical p99 at MaxRuns.

// Confidence is the coverage of the p99 interval Summarise records.
const Confidence = 0.95

// MinRuns is the timed runs per batch size a profile aims for before it
// stops at the end of its share of the budget. It is not enough for
// P99High (BoundRuns is); a budget that affords more gives pruning bounds
// to compare.
const MinRuns = 200

// BoundRuns is the fewest samples for which Summarise sets P99High: the
// smallest n with 0.99ⁿ ≤ (1 − Confidence)/2.
const BoundRuns = 368

// MaxRuns caps the runs per batch size (the profiler's MaxIters): by then the
// p99 is known to about ±1 % for a typical spread, and the samples stay
// small.
const MaxRuns = 10000

// Summarise condenses latency samples (ms) into a catalog.Latency. It sorts
// a copy and ignores NaNs. P50 and P99 are nearest-rank percentiles (the
// ⌈p·n⌉-th smallest sample); Samples counts the samples used; Spread is
// (P99 − P50) ÷ P50 (0 when P50 is 0). P99Low and P99High are the order
// statistics OrderBounds(n, 0.99, Confidence) picks: together a 95 %
// interval for the true p99, each alone a 97.5 % one-sided bound. With
// fewer than BoundRuns samples P99High is 0 (no sample bounds the p99 from
// above with that confidence); P99Low is 0 only without samples.
func Summarise(samples []float64) catalog.Latency {
	s := make([]float64, 0, len(samples))
	for _, x := range samples {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	n := len(s)
	if n == 0 {
		return catalog.Latency{}
	}
	sort.Float64s(s)
	l := catalog.Latency{P50: nearestRank(s, 0.50), P99: nearestRank(s, 0.99), Samples: n}
	if l.P50 > 0 {
		l.Spread = (l.P99 - l.P50) / l.P50
	}
	lo, hi := OrderBounds(n, 0.99, Confidence)
	if lo > 0 {
		l.P99Low = min(s[lo-1], l.P99)
	}
	if hi > 0 {
		l.P99High = max(s[hi-1], l.P99)
	}
	return l
}

// nearestRank is the ⌈q·n⌉-th smallest of sorted (the rule of child.go's
// percentile).
func nearestRank(sorted []float64, q float64) float64 {
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// OrderBounds returns the 1-based ranks l ≤ u of the order statistics that
// bound the q-quantile of n independent samples with probability at least
// conf, equal-tailed: l is the largest rank with P(B < l) ≤ (1−conf)/2 and
// u the smallest with P(B ≥ u) ≤ (1−conf)/2, B ~ binomial(n, q), summed
// exactly in log space. A rank is 0 when no order statistic qualifies (n
// too small for that end) or the arguments are out of range (n < 1, q or
// conf outside (0, 1)).
func OrderBounds(n int, q, conf float64) (l, u int) {
	if n < 1 || !(q > 0 && q < 1) || !(conf > 0 && conf < 1) {
		return 0, 0
	}
	tail := (1 - conf) / 2
	lgN, _ := math.Lgamma(float64(n) + 1)
	logQ, logP := math.Log(q), math.Log1p(-q)
	logPMF := func(k int) float64 {
		a, _ := math.Lgamma(float64(k) + 1)
		b, _ := math.Lgamma(float64(n-k) + 1)
		return lgN - a - b + float64(k)*logQ + float64(n-k)*logP
	}
	// Walk k down from n accumulating S(k) = P(B ≥ k): u is the smallest k
	// with S(k) ≤ tail, l the largest with S(k) ≥ 1 − tail (P(B < k) ≤ tail).
	s := 0.0
	for k := n; k >= 1; k-- {
		s += math.Exp(logPMF(k))
		if s <= tail {
			u = k
		}
		if s >= 1-tail {
			l = k
			break
		}
	}
	return l, u
}

// Enough reports whether samples suffice to stop timing a batch size:
// there is at least one sample and either at least minRuns of them, or the
// p99's confidence interval (Summarise's, which needs BoundRuns samples)
// has a relative half-width (P99High − P99Low) ÷ 2 ÷ P99 of at most
// relHalfWidth (≤ 0 or NaN: never). The caller also stops at its time
// budget. With a large minRuns (the profiler passes MaxRuns) the interval
// stops a well-behaved model early, at a few hundred runs, while a noisy
// one runs on to minRuns or the deadline: with relHalfWidth
// 0.05, a p99 some 40 % above the p50 is pinned after about 450–550 runs.
// Enough sorts a copy of samples: check it every few dozen runs, not after
// each.
func Enough(samples []float64, minRuns int, relHalfWidth float64) bool {
	n := 0
	for _, x := range samples {
		if !math.IsNaN(x) {
			n++
		}
	}
	if n == 0 {
		return false
	}
	if n >= minRuns {
		return true
	}
	if !(relHalfWidth > 0) || n < BoundRuns {
		return false
	}
	l := Summarise(samples)
	return l.P99High > 0 && l.P99 > 0 && (l.P99High-l.P99Low)/2 <= relHalfWidth*l.P99
}
