package profiler

import (
	"math"
	"math/big"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

// binomialTails returns, exactly, 40·P(B < k) and 40·P(B ≥ k) scaled by
// 100ⁿ for B ~ binomial(n, 0.99), k = 0..n+1, so that comparing with
// 100ⁿ compares the probabilities with 1/40 = 2.5 %.
func binomialTails(n int) (below, atLeast []*big.Int, scale *big.Int) {
	terms := make([]*big.Int, n+1) // C(n,k)·99^k·1^(n−k)
	c := big.NewInt(1)
	pow := big.NewInt(1)
	for k := 0; k <= n; k++ {
		terms[k] = new(big.Int).Mul(c, pow)
		c.Mul(c, big.NewInt(int64(n-k)))
		c.Quo(c, big.NewInt(int64(k+1)))
		pow.Mul(pow, big.NewInt(99))
	}
	below = make([]*big.Int, n+2)
	below[0] = new(big.Int)
	for k := 1; k <= n+1; k++ {
		below[k] = new(big.Int).Add(below[k-1], terms[k-1])
	}
	atLeast = make([]*big.Int, n+2)
	atLeast[n+1] = new(big.Int)
	for k := n; k >= 0; k-- {
		atLeast[k] = new(big.Int).Add(atLeast[k+1], terms[k])
	}
	forty := big.NewInt(40)
	for k := range below {
		below[k].Mul(below[k], forty)
		atLeast[k].Mul(atLeast[k], forty)
	}
	return below, atLeast, new(big.Int).Exp(big.NewInt(100), big.NewInt(int64(n)), nil)
}

// TestStatsOrderBoundsExact checks the ranks against exact rational
// arithmetic: l is the largest rank with P(B < l) ≤ 2.5 %, u the smallest
// with P(B ≥ u) ≤ 2.5 %, 0 when none.
func TestStatsOrderBoundsExact(t *testing.T) {
	for _, n := range []int{1, 2, 10, 50, 100, 200, 298, 299, 367, 368, 369, 400, 500, 750, 1000} {
		below, atLeast, scale := binomialTails(n)
		ok := func(x *big.Int) bool { return x.Cmp(scale) <= 0 } // 40·P·100ⁿ ≤ 100ⁿ
		wantL := 0
		for k := 1; k <= n; k++ {
			if ok(below[k]) {
				wantL = k
			}
		}
		wantU := 0
		for k := n; k >= 1; k-- {
			if ok(atLeast[k]) {
				wantU = k
			}
		}
		l, u := OrderBounds(n, 0.99, 0.95)
		if l != wantL || u != wantU {
			t.Errorf("n=%d: OrderBounds = (%d, %d), exact (%d, %d)", n, l, u, wantL, wantU)
		}
	}
}

func TestStatsOrderBounds(t *testing.T) {
	// BoundRuns is the first n with an upper bound.
	if _, u := OrderBounds(BoundRuns-1, 0.99, Confidence); u != 0 {
		t.Errorf("n=%d: upper rank %d, want none", BoundRuns-1, u)
	}
	if _, u := OrderBounds(BoundRuns, 0.99, Confidence); u != BoundRuns {
		t.Errorf("n=%d: upper rank %d, want %d (the largest sample)", BoundRuns, u, BoundRuns)
	}
	// The interval holds the nearest-rank p99, and tightens (in ranks per
	// sample) towards 0.99 as n grows.
	prevWidth := 1.0
	for n := 1; n <= 3000; n++ {
		l, u := OrderBounds(n, 0.99, Confidence)
		k := int(math.Ceil(0.99 * float64(n)))
		if l < 1 || l > k || (u != 0 && (u < k || u > n)) || (n >= BoundRuns) != (u != 0) {
			t.Fatalf("n=%d: ranks (%d, %d) around nearest rank %d", n, l, u, k)
		}
		if n%250 == 0 && n >= 500 {
			w := float64(u-l) / float64(n)
			if w >= prevWidth {
				t.Errorf("n=%d: width %.4f of the ranks did not shrink from %.4f", n, w, prevWidth)
			}
			prevWidth = w
		}
	}
	if l, u := OrderBounds(100000, 0.99, Confidence); l < 98900 || u > 99100 {
		t.Errorf("n=100000: ranks (%d, %d), want within 0.99 ± 0.001", l, u)
	}
	// Other quantiles and out-of-range arguments.
	if l, u := OrderBounds(100, 0.5, 0.95); l != 40 || u != 61 {
		t.Errorf("median of 100: ranks (%d, %d), want (40, 61)", l, u)
	}
	for _, c := range []struct {
		n       int
		q, conf float64
	}{{0, 0.99, 0.95}, {-3, 0.99, 0.95}, {100, 0, 0.95}, {100, 1, 0.95}, {100, math.NaN(), 0.95}, {100, 0.99, 1}, {100, 0.99, math.NaN()}} {
		if l, u := OrderBounds(c.n, c.q, c.conf); l != 0 || u != 0 {
			t.Errorf("OrderBounds(%d, %v, %v) = (%d, %d), want (0, 0)", c.n, c.q, c.conf, l, u)
		}
	}
}

// nearestRankRef is child.go's percentile rule, restated.
func nearestRankRef(sorted []float64, p float64) float64 {
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func TestSummariseEdgeCases(t *testing.T) {
	if l := Summarise(nil); l.P50 != 0 || l.P99 != 0 || l.Samples != 0 || l.P99Low != 0 || l.P99High != 0 || l.Spread != 0 {
		t.Errorf("no samples: %+v", l)
	}
	if l := Summarise([]float64{math.NaN(), math.NaN()}); l.Samples != 0 || l.P99 != 0 {
		t.Errorf("only NaNs: %+v", l)
	}
	l := Summarise([]float64{2.5})
	if l.P50 != 2.5 || l.P99 != 2.5 || l.Samples != 1 || l.P99Low != 2.5 || l.P99High != 0 || l.Spread != 0 {
		t.Errorf("one sample: %+v", l)
	}
	l = Summarise([]float64{0, 0, 0})
	if l.Spread != 0 || math.IsNaN(l.Spread) {
		t.Errorf("zero latencies: spread %v", l.Spread)
	}
	in := []float64{3, math.NaN(), 1, 2, 4}
	l = Summarise(in)
	if l.Samples != 4 || l.P50 != 2 || l.P99 != 4 || l.Spread != 1 {
		t.Errorf("NaN ignored: %+v", l)
	}
	if in[0] != 3 || in[2] != 1 {
		t.Errorf("Summarise reordered its input: %v", in)
	}
}

func TestSummariseMatchesNearestRank(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{1, 2, 3, 7, 99, 100, 101, 200, 367, 368, 1000, 4321} {
		s := make([]float64, n)
		for i := range s {
			s[i] = math.Exp(rng.NormFloat64())
		}
		l := Summarise(s)
		sorted := slices.Sorted(slices.Values(s))
		if l.P50 != nearestRankRef(sorted, 50) || l.P99 != nearestRankRef(sorted, 99) || l.Samples != n {
			t.Errorf("n=%d: %+v, want p50 %v p99 %v", n, l, nearestRankRef(sorted, 50), nearestRankRef(sorted, 99))
		}
		if want := (l.P99 - l.P50) / l.P50; math.Abs(l.Spread-want) > 1e-12 {
			t.Errorf("n=%d: spread %v, want %v", n, l.Spread, want)
		}
		if l.P99Low <= 0 || l.P99Low > l.P99 || (n >= BoundRuns) != (l.P99High > 0) || (l.P99High > 0 && l.P99High < l.P99) {
			t.Errorf("n=%d: bounds %v ≤ %v ≤ %v", n, l.P99Low, l.P99, l.P99High)
		}
	}
}

// TestSummariseCoverage: over seeded trials, the interval holds the true p99
// of a known distribution at least about 95 % of the time, and each end
// misses at most about 2.5 % of the time — also with ties (a coarse clock).
func TestSummariseCoverage(t *testing.T) {
	z99 := 2.3263478740408408
	dists := []struct {
		name string
		draw func(*rand.Rand) float64
		p99  float64
	}{
		{"lognormal σ=0.5", func(r *rand.Rand) float64 { return math.Exp(0.5 * r.NormFloat64()) }, math.Exp(0.5 * z99)},
		{"exponential", func(r *rand.Rand) float64 { return 1 + r.ExpFloat64() }, 1 + math.Log(100)},
		{"uniform", func(r *rand.Rand) float64 { return r.Float64() }, 0.99},
		{"lognormal on a 0.05 ms clock", func(r *rand.Rand) float64 { return math.Ceil(math.Exp(0.2*r.NormFloat64())/0.05) * 0.05 },
			math.Ceil(math.Exp(0.2*z99)/0.05) * 0.05},
	}
	trials := 2000
	if testing.Short() {
		trials = 500
	}
	for _, d := range dists {
		for _, n := range []int{BoundRuns, 1000} {
			rng := rand.New(rand.NewSource(int64(n)))
			low, high := 0, 0
			s := make([]float64, n)
			for i := 0; i < trials; i++ {
				for j := range s {
					s[j] = d.draw(rng)
				}
				l := Summarise(s)
				if l.P99Low > d.p99 {
					low++
				}
				if l.P99High < d.p99 {
					high++
				}
			}
			cover := 1 - float64(low+high)/float64(trials)
			t.Logf("%s, n=%d: coverage %.3f (low end above %.3f, high end below %.3f)", d.name, n, cover,
				float64(low)/float64(trials), float64(high)/float64(trials))
			if cover < 0.93 || float64(low)/float64(trials) > 0.04 || float64(high)/float64(trials) > 0.04 {
				t.Errorf("%s, n=%d: coverage %.3f, misses %d low %d high of %d", d.name, n, cover, low, high, trials)
			}
		}
	}
}

// TestSummariseTightensWithN: on the same distribution the interval, relative
// to the p99, narrows as the samples grow — from 555 samples on. Below that
// the upper bound is the largest sample, which creeps up with n.
func TestSummariseTightensWithN(t *testing.T) {
	for n := BoundRuns; n <= 560; n++ {
		if _, u := OrderBounds(n, 0.99, Confidence); (u == n) != (n < 555) {
			t.Fatalf("n=%d: upper rank %d", n, u)
		}
	}
	prev := math.Inf(1)
	for _, n := range []int{555, 750, 1000, 2000, 5000, 10000, 50000} {
		s := make([]float64, n) // the lognormal's quantiles at (i − ½)/n
		for i := range s {
			s[i] = math.Exp(0.3 * math.Sqrt2 * math.Erfinv(2*(float64(i)+0.5)/float64(n)-1))
		}
		l := Summarise(s)
		w := (l.P99High - l.P99Low) / l.P99
		if !(w < prev) {
			t.Errorf("n=%d: relative width %.4f, not below %.4f", n, w, prev)
		}
		prev = w
	}
	if prev > 0.02 {
		t.Errorf("50000 samples: relative width %.4f, want under 2 %%", prev)
	}
}

func lognormal(seed int64, n int, sigma float64) []float64 {
	rng := rand.New(rand.NewSource(seed))
	s := make([]float64, n)
	for i := range s {
		s[i] = math.Exp(sigma * rng.NormFloat64())
	}
	return s
}

func TestEnough(t *testing.T) {
	cases := []struct {
		name    string
		samples []float64
		minRuns int
		rel     float64
		want    bool
	}{
		{"no samples", nil, 0, 0.05, false},
		{"only NaNs", []float64{math.NaN()}, 0, 0.05, false},
		{"one sample, one wanted", []float64{1}, 1, 0, true},
		{"one sample", []float64{1}, MinRuns, 0.05, false},
		{"minRuns reached", lognormal(1, MinRuns, 1), MinRuns, 0, true},
		{"NaNs do not count", append(lognormal(1, MinRuns-1, 1), math.NaN()), MinRuns, 0, false},
		{"tight, but too few for a bound", lognormal(1, BoundRuns-1, 0.01), MaxRuns, 0.05, false},
		{"tight p99 stops early", lognormal(1, BoundRuns, 0.01), MaxRuns, 0.05, true},
		{"wide p99 runs on", lognormal(1, 2000, 1), MaxRuns, 0.05, false},
		{"half-width disabled", lognormal(1, 2000, 0.01), MaxRuns, 0, false},
		{"half-width NaN", lognormal(1, 2000, 0.01), MaxRuns, math.NaN(), false},
	}
	for _, c := range cases {
		if got := Enough(c.samples, c.minRuns, c.rel); got != c.want {
			t.Errorf("%s: Enough = %v, want %v", c.name, got, c.want)
		}
	}
	// A typical latency spread (p99 ≈ 1.4 × p50) is pinned to ±5 % after
	// some hundreds of runs, long before thousands.
	s := lognormal(2, MaxRuns, 0.15)
	n := BoundRuns
	for ; n < len(s) && !Enough(s[:n], MaxRuns, 0.05); n += 50 {
	}
	if n > 2000 {
		t.Errorf("σ=0.15: ±5 %% reached only after %d runs", n)
	}
	t.Logf("σ=0.15: p99 within ±5 %% after %d runs", n)
}

func sumDurations(m map[int]time.Duration) time.Duration {
	var s time.Duration
	for _, d := range m {
		s += d
	}
	return s
}

func TestProfilePlan(t *testing.T) {
	job := Job{Batches: []int{1, 4, 8, 16, 32}, MinIters: 20, Budget: 400 * time.Millisecond, MaxBudget: 3200 * time.Millisecond}
	// A fast model: every size fits; the base budget and the cap are
	// shared by batch size (a 61st for batch 1), each hard share holding
	// its own MinIters runs besides.
	p := newProfilePlan(job)
	fast := []float64{0.0001, 0.0004, 0.0008, 0.0016, 0.0032}
	for k, e := range fast {
		if !p.fits(k, e) {
			t.Fatalf("batch %d does not fit", job.Batches[k])
		}
		p.keep(e)
	}
	soft, hard := p.shares(job.Batches, fast)
	if soft[0] != job.Budget/61 || hard[0] < job.MaxBudget/61*99/100 || hard[0] > job.MaxBudget/61*101/100 {
		t.Errorf("batch 1 shares %s and %s, want a 61st of each budget", soft[0], hard[0])
	}
	if soft[4] != job.Budget*32/61 {
		t.Errorf("batch 32 soft share %s, want 32/61 of %s", soft[4], job.Budget)
	}
	// A slow model: 20 runs × 2 ms × (1+4+8+16+32) = 2.44 s set aside of
	// 3.2 s; each size holds its MinIters runs and its part of the 0.76 s left.
	slow := newProfilePlan(job)
	var est []float64
	for k, b := range job.Batches {
		e := 2 * float64(b)
		if !slow.fits(k, e) {
			t.Fatalf("batch %d does not fit", b)
		}
		slow.keep(e)
		est = append(est, e)
	}
	_, h := slow.shares(job.Batches, est)
	if want := 40*time.Millisecond + 760*time.Millisecond/61; h[0] < want*99/100 || h[0] > want*101/100 {
		t.Errorf("slow batch 1 hard share %s, want %s", h[0], want)
	}
	var sum time.Duration
	for _, x := range h {
		sum += x
	}
	if sum < job.MaxBudget*99/100 || sum > job.MaxBudget*101/100 {
		t.Errorf("hard shares add up to %s, not the cap %s", sum, job.MaxBudget)
	}
	// A batch size whose MinIters runs fit beside those set aside fits;
	// one whose do not is cut, with the rest.
	p = newProfilePlan(job)
	p.keep(10)
	if !p.fits(1, 10) || p.fits(2, 160) {
		t.Fatal("fits")
	}
	p.cut(2, 160)
	p.few = []int{1}
	note := p.note()
	if !strings.Contains(note, "batch sizes [8 16 32] not profiled") || !strings.Contains(note, "batch sizes [1] timed fewer than 200") {
		t.Errorf("note %q", note)
	}
	// The first batch size is always profiled, however slow.
	if !newProfilePlan(job).fits(0, 1e9) {
		t.Error("batch 1 does not fit")
	}
	// Stopping: past the soft share only with MinRuns runs; at the hard
	// share always; before the soft share only on a tight interval.
	lat := make([]float64, MinRuns-1)
	for i := range lat {
		lat[i] = 1 + float64(i%7)
	}
	if done(lat, 2*time.Millisecond, time.Millisecond, time.Second) {
		t.Error("stopped past the soft share with fewer than MinRuns runs, the hard share left")
	}
	if !done(lat, time.Second, time.Millisecond, time.Second) {
		t.Error("went on past the hard share")
	}
	if !done(append(lat, 1), time.Millisecond, time.Millisecond, time.Second) {
		t.Error("went on past the soft share with MinRuns runs")
	}
	flat := make([]float64, 2*BoundRuns)
	for i := range flat {
		flat[i] = 1
	}
	if !done(flat, 0, time.Second, time.Second) {
		t.Error("went on with the p99 pinned")
	}
}

// TestTimeInterleaved: timed in turns, a slow spell over the last third of
// the profile (where timing one size after another put the largest batch
// size) slows every batch size's runs alike, and no median moves; every
// size stops by the plan's rules with at least MinIters runs, within the
// cap.
func TestTimeInterleaved(t *testing.T) {
	// The e2e suite's convnet: 40 ms a batch size, 8× that at most; batch
	// 16 does not fit beside the others' MinIters runs.
	job := Job{Batches: []int{1, 4, 8, 16, 32}, MinIters: 20, MaxIters: MaxRuns, Budget: 200 * time.Millisecond, MaxBudget: 1600 * time.Millisecond}
	base := []time.Duration{4300 * time.Microsecond, 17 * time.Millisecond, 34 * time.Millisecond}
	profile := func(slowFrom, slowTo time.Duration) (lats [][]float64, slowRuns []int, took time.Duration, plan *profilePlan) {
		plan = newProfilePlan(job)
		var sizes []int
		var est []float64
		for k, b := range job.Batches {
			e := 4.3 * float64(b) * 1.05
			if !plan.fits(k, e) {
				plan.cut(k, e)
				break
			}
			plan.keep(e)
			sizes, est = append(sizes, b), append(est, e)
		}
		var now time.Duration
		slowRuns = make([]int, len(base))
		lats, err := timeInterleaved(sizes, est, job, plan, func(k int) (time.Duration, error) {
			d := base[k]
			if now >= slowFrom && now < slowTo {
				d = d * 14 / 10
				slowRuns[k]++
			}
			now += d
			return d, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return lats, slowRuns, now, plan
	}
	_, _, total, plan := profile(0, 0)
	if len(plan.few) != 3 || !strings.Contains(plan.note(), "batch sizes [16 32] not profiled") {
		t.Errorf("note %q, want batch sizes 16 and 32 left out and the rest timed fewer than MinRuns times", plan.note())
	}
	if total > job.MaxBudget+base[2] {
		t.Errorf("took %s, past the %s cap", total, job.MaxBudget)
	}
	lats, slowRuns, _, _ := profile(total*2/3, 10*total)
	for k, b := range job.Batches[:3] {
		n := len(lats[k])
		if n < job.MinIters {
			t.Errorf("batch %d: %d runs, fewer than MinIters", b, n)
		}
		share := float64(slowRuns[k]) / float64(n)
		if share < 0.2 || share > 0.45 {
			t.Errorf("batch %d: %d of its %d runs in the slow spell (%.0f%%): not spread over the profile", b, slowRuns[k], n, 100*share)
		}
		if p50, want := Summarise(lats[k]).P50, float64(base[k])/1e6; math.Abs(p50-want) > 0.01*want {
			t.Errorf("batch %d: p50 %.2f ms, want %.2f: the slow spell moved it", b, p50, want)
		}
		t.Logf("batch %d: %d runs, %d in the slow spell", b, n, slowRuns[k])
	}
}
