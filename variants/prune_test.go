package variants

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/profiler"
)

func costed(name string, acc, p99b1, p99max, qps float64, mem, file int64, cost float64, maxBatch int) Costed {
	lat := map[int]catalog.Latency{1: {P50: p99b1 / 2, P99: p99b1, Samples: 100}}
	if maxBatch > 1 {
		lat[maxBatch] = catalog.Latency{P50: p99max / 2, P99: p99max, Samples: 100}
	}
	return Costed{Variant: catalog.Variant{Name: name, Precision: FP32, OptLevel: "basic", Threads: 1, MaxBatch: maxBatch,
		Accuracy: acc, FileBytes: file, Profile: catalog.Profile{LatencyMs: lat, ThroughputQPS: qps, PeakMemoryBytes: mem}},
		CostPerHour: cost}
}

func TestPrune(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name    string
		in      []Costed
		kept    []string
		dropped map[string]string // name -> substring of reason
	}{
		{
			name: "faster and equal elsewhere dominates",
			in: []Costed{
				costed("slow", 95, 2, 2, 500, 10*mib, 1000, 0.05, 1),
				costed("fast", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
			},
			kept:    []string{"fast"},
			dropped: map[string]string{"slow": "dominated by fast"},
		},
		{
			name: "accuracy against speed is a trade-off",
			in: []Costed{
				costed("accurate", 98, 2, 2, 500, 10*mib, 1000, 0.05, 1),
				costed("fast", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
			},
			kept: []string{"accurate", "fast"},
		},
		{
			name: "cheaper but slower is a trade-off",
			in: []Costed{
				costed("t2", 95, 1, 1, 1000, 10*mib, 1000, 0.10, 1),
				costed("t1", 95, 2, 2, 500, 10*mib, 1000, 0.05, 1),
			},
			kept: []string{"t1", "t2"},
		},
		{
			name: "within noise everywhere: keep the preferred one",
			in: []Costed{
				costed("b", 95, 1.00, 1, 1000, 10*mib, 1000, 0.05, 1),
				costed("a", 95, 1.05, 1, 980, 10*mib, 1000, 0.05, 1),
			},
			kept:    []string{"a"},
			dropped: map[string]string{"b": "equivalent to a"},
		},
		{
			name: "larger max batch: more throughput but a longer full batch",
			in: []Costed{
				costed("b1", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
				costed("b16", 95, 1, 4, 4000, 10*mib, 1000, 0.05, 16),
			},
			kept: []string{"b1", "b16"},
		},
		{
			name: "smaller file alone is enough to survive",
			in: []Costed{
				costed("fp32", 95, 1, 1, 1000, 10*mib, 4000, 0.05, 1),
				costed("int8", 95, 1.5, 1.5, 700, 10*mib, 1000, 0.05, 1),
			},
			kept: []string{"fp32", "int8"},
		},
		{
			name: "higher throughput alone dominates",
			in: []Costed{
				costed("x", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
				costed("y", 95, 1, 1, 1500, 10*mib, 1000, 0.05, 1),
			},
			kept:    []string{"y"},
			dropped: map[string]string{"x": "throughput 1500/s vs 1000/s"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, dropped := Prune(tc.in, DefaultTolerance)
			var names []string
			for _, k := range kept {
				names = append(names, k.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.kept, ",") {
				t.Fatalf("kept %v, want %v (dropped %v)", names, tc.kept, dropped)
			}
			if len(dropped) != len(tc.dropped) {
				t.Fatalf("dropped %v, want %v", dropped, tc.dropped)
			}
			for _, d := range dropped {
				if want, ok := tc.dropped[d.Name]; !ok || !strings.Contains(d.Reason, want) {
					t.Errorf("dropped %s: %q, want reason containing %q", d.Name, d.Reason, want)
				}
			}
		})
	}
}

// TestPruneNeverDropsEverything: whatever the measurements, something survives,
// every variant is kept or dropped, and some kept variant serves the largest
// batch size.
func TestPruneNeverDropsEverything(t *testing.T) {
	for seed := 0; seed < 200; seed++ {
		var in []Costed
		for i := 0; i < 1+seed%12; i++ {
			x := float64((seed*31+i*17)%13 + 1)
			in = append(in, costed(string(rune('a'+i)), 90+float64(i%3), x, x*2, 1000/x, int64(x)*1<<20, int64(i%2+1)*1000, 0.05*float64(i%2+1), 1+i%2*7))
		}
		kept, dropped := Prune(in, DefaultTolerance)
		if len(kept) == 0 || len(kept)+len(dropped) != len(in) {
			t.Fatalf("seed %d: kept %d dropped %d of %d", seed, len(kept), len(dropped), len(in))
		}
		largest, keptLargest := 0, 0
		for _, v := range in {
			largest = max(largest, v.MaxBatch)
		}
		for _, v := range kept {
			keptLargest = max(keptLargest, v.MaxBatch)
		}
		if keptLargest != largest {
			t.Fatalf("seed %d: kept variants serve batches up to %d, the model up to %d", seed, keptLargest, largest)
		}
	}
}

func TestThreadCountsAndBatches(t *testing.T) {
	for cores, want := range map[int]string{1: "[1]", 2: "[1 2]", 6: "[1 2 4 6]", 16: "[1 2 4 8 16]"} {
		if got := fmtInts(ThreadCounts(cores)); got != want {
			t.Errorf("ThreadCounts(%d) = %s, want %s", cores, got, want)
		}
	}
	if got := fmtInts(MaxBatches(0)); got != "[1 4 8 16 32]" {
		t.Errorf("dynamic batch: %s", got)
	}
	if got := fmtInts(MaxBatches(1)); got != "[1]" {
		t.Errorf("fixed batch 1: %s", got)
	}
}

func fmtInts(v []int) string { return fmt.Sprint(v) }

// trueModel is how fast a family of variants really is. Every graph
// (precision × optimisation level) at every thread count is profiled at
// batch sizes 1, 4, 8 and 16 with runs lognormal samples around a median
// of baseMs × precision × level × threads^-0.6 × (1 − perB + perB × batch);
// a variant of max batch mb takes the batch sizes up to mb, as the
// registrar does.
type trueModel struct {
	baseMs float64            // median latency of fp32, basic, 1 thread, batch 1
	sigma  float64            // lognormal σ of the samples (p99 ≈ e^{2.33σ} × median)
	opt    map[string]float64 // latency factor of each optimisation level
	perB   float64            // share of the batch-1 latency that grows with the batch
	runs   int                // samples per batch size
}

// sameMachine: the optimisation levels within 6 % of each other (as on
// small models), int8 faster but less accurate and smaller, more threads
// faster but dearer, larger batches with more throughput but longer waits,
// a p99 about 40 % above the median, 400 runs per batch size.
var sameMachine = trueModel{baseMs: 1, sigma: 0.15, opt: map[string]float64{"basic": 1, "extended": 0.97, "all": 0.94}, perB: 0.6, runs: 400}

// draw profiles the family once with fresh noise. pointOnly removes what
// the old rule did not have (the p99 bounds and the spread): Prune then
// compares point estimates within the tolerance, as before.
func (m trueModel) draw(rng *rand.Rand, pointOnly bool) []Costed {
	const mib = 1 << 20
	var out []Costed
	for _, prec := range []string{FP32, INT8} {
		precF, acc, file := 1.0, 76.0, int64(4_000_000)
		if prec == INT8 {
			precF, acc, file = 0.7, 75.5, 1_000_000
		}
		for oi, opt := range OptLevels {
			for _, th := range []int{1, 2, 4} {
				res := profiler.Result{Latency: map[int]catalog.Latency{}, PeakMemory: map[int]int64{}}
				for _, b := range []int{1, 4, 8, 16} {
					median := m.baseMs * precF * m.opt[opt] * math.Pow(float64(th), -0.6) * (1 - m.perB + m.perB*float64(b))
					samples := make([]float64, m.runs)
					for i := range samples {
						samples[i] = median * math.Exp(m.sigma*rng.NormFloat64())
					}
					l := profiler.Summarise(samples)
					if pointOnly {
						l.P99Low, l.P99High, l.Spread = 0, 0, 0
					}
					res.Latency[b] = l
					res.PeakMemory[b] = int64(float64(40*mib)*precF) + int64(b)*mib
				}
				for _, mb := range []int{1, 4, 8, 16} {
					v := catalog.Variant{Name: fmt.Sprintf("m.%s.%s.t%d.b%d", prec, opt, th, mb), Precision: prec, OptLevel: opt,
						Threads: th, MaxBatch: mb, Accuracy: acc, FileBytes: file - int64(oi)*10_000,
						Profile: profiler.VariantProfile(res, mb, time.Unix(0, 0))}
					out = append(out, Costed{Variant: v, CostPerHour: 0.05 * float64(th)})
				}
			}
		}
	}
	return out
}

func keptNames(vs []Costed) string {
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	return strings.Join(names, ",")
}

// differing profiles the family twice per trial, independently, prunes
// both and counts the trials whose kept sets differ.
func (m trueModel) differing(trials int, pointOnly bool) int {
	n := 0
	for seed := 0; seed < trials; seed++ {
		rng := rand.New(rand.NewSource(int64(seed)))
		a, _ := Prune(m.draw(rng, pointOnly), DefaultTolerance)
		b, _ := Prune(m.draw(rng, pointOnly), DefaultTolerance)
		if keptNames(a) != keptNames(b) {
			n++
		}
	}
	return n
}

// TestPruneNotOnNoise: registering the same model twice on the same idle
// machine keeps the same variants. Two independent profiles of one family
// (sameMachine: 96 variants, 400 runs per batch size) pruned with the
// confidence bounds keep identical sets in nearly every trial; compared by
// point estimates, as Prune did before the bounds, they differ in most
// (near-equal optimisation levels fall either side of the tolerance on
// noise, and so do throughputs near it).
func TestPruneNotOnNoise(t *testing.T) {
	trials := 60
	if testing.Short() {
		trials = 20
	}
	withBounds := sameMachine.differing(trials, false)
	pointOnly := sameMachine.differing(trials, true)
	t.Logf("kept sets differ in %d of %d trials with bounds, %d of %d by point estimates", withBounds, trials, pointOnly, trials)
	if withBounds > trials/20 {
		t.Errorf("with confidence bounds the kept sets differ in %d of %d trials, want at most %d", withBounds, trials, trials/20)
	}
	if pointOnly < trials/2 {
		t.Errorf("by point estimates the kept sets differ in only %d of %d trials: the family no longer shows the problem", pointOnly, trials)
	}
}

// TestPruneEqualVariantsOnlyDeduplicated: variants that are truly the same
// are never "dominated" one by another: each is dropped as equivalent to
// the preferred one, in every trial.
func TestPruneEqualVariantsOnlyDeduplicated(t *testing.T) {
	m := sameMachine
	m.opt = map[string]float64{"basic": 1, "extended": 1, "all": 1}
	for seed := 0; seed < 20; seed++ {
		rng := rand.New(rand.NewSource(int64(seed)))
		var in []Costed
		for _, v := range m.draw(rng, false) {
			if v.Precision == FP32 && v.Threads == 1 && v.MaxBatch == 16 {
				in = append(in, v)
			}
		}
		kept, dropped := Prune(in, DefaultTolerance)
		if keptNames(kept) != "m.fp32.basic.t1.b16" {
			t.Fatalf("seed %d: kept %s, want the preferred m.fp32.basic.t1.b16 (dropped %v)", seed, keptNames(kept), dropped)
		}
		for _, d := range dropped {
			if !strings.Contains(d.Reason, "equivalent to") {
				t.Fatalf("seed %d: %s dropped for %q", seed, d.Name, d.Reason)
			}
		}
	}
}

// bounded is costed with p99 intervals at both profiled batch sizes.
func bounded(c Costed, lowHigh ...float64) Costed {
	lat := map[int]catalog.Latency{}
	for b, l := range c.Profile.LatencyMs {
		lat[b] = l
	}
	c.Profile.LatencyMs = lat
	for i, b := range c.Profile.Batches() {
		l := lat[b]
		l.P99Low, l.P99High, l.Samples = lowHigh[2*i], lowHigh[2*i+1], 1000
		lat[b] = l
	}
	return c
}

func TestPruneComparesIntervals(t *testing.T) {
	const mib = 1 << 20
	// The intervals are under test, not the floors below which any two
	// latencies are equal.
	tol := DefaultTolerance
	tol.LatencyFloorMs, tol.SampleFloorMs = 0, 0
	base := func(name string, p99 float64) Costed { return costed(name, 95, p99, p99, 1000, 10*mib, 1000, 0.05, 1) }

	// 20 % apart on the point estimates, but the intervals overlap: equal.
	kept, dropped := Prune([]Costed{
		bounded(base("b", 1.0), 0.90, 1.15, 0.90, 1.15),
		bounded(base("a", 1.2), 1.05, 1.40, 1.05, 1.40),
	}, tol)
	if keptNames(kept) != "a" || len(dropped) != 1 || !strings.Contains(dropped[0].Reason, "equivalent to a") {
		t.Errorf("overlapping intervals: kept %s, dropped %v; want a kept, b equivalent to it", keptNames(kept), dropped)
	}

	// Apart, but by less than the tolerance at their ends: still equal.
	kept, _ = Prune([]Costed{
		bounded(base("b", 1.0), 0.98, 1.02, 0.98, 1.02),
		bounded(base("a", 1.1), 1.05, 1.12, 1.05, 1.12),
	}, tol)
	if keptNames(kept) != "a" {
		t.Errorf("intervals apart by under the tolerance: kept %s, want a (the preferred of two equals)", keptNames(kept))
	}

	// Apart by more than the tolerance: the faster dominates, and says so
	// with its interval.
	kept, dropped = Prune([]Costed{
		bounded(base("fast", 1.0), 0.95, 1.05, 0.95, 1.05),
		bounded(base("slow", 1.4), 1.30, 1.50, 1.30, 1.50),
	}, tol)
	if keptNames(kept) != "fast" || len(dropped) != 1 || !strings.Contains(dropped[0].Reason, "dominated by fast") ||
		!strings.Contains(dropped[0].Reason, "95% CI 0.950–1.050") {
		t.Errorf("intervals well apart: kept %s, dropped %v", keptNames(kept), dropped)
	}

	// Only one side has bounds: the tolerance decides, as before.
	kept, _ = Prune([]Costed{
		base("slow", 1.2),
		bounded(base("fast", 1.0), 0.60, 1.50, 0.60, 1.50),
	}, tol)
	if keptNames(kept) != "fast" {
		t.Errorf("bounds on one side only: kept %s, want fast (tolerance rule)", keptNames(kept))
	}
}

func TestPruneThroughputMargin(t *testing.T) {
	const mib = 1 << 20
	noisy := func(c Costed, samples int, spread float64) Costed {
		lat := map[int]catalog.Latency{}
		for b, l := range c.Profile.LatencyMs {
			l.Samples, l.Spread = samples, spread
			lat[b] = l
		}
		c.Profile.LatencyMs = lat
		return c
	}
	// 20 % more throughput, otherwise equal. p50 = p99/2 at batch 1.
	x := costed("x", 95, 1, 1, 2000, 10*mib, 1000, 0.05, 1)
	y := costed("y", 95, 1, 1, 2400, 10*mib, 1000, 0.05, 1)
	// Few, widely spread samples: margin 1.96·0.5/√20 ÷ 0.49 × 1 ≈ 45 %, so
	// the difference could be noise: equal, x (preferred by name) kept.
	if kept, _ := Prune([]Costed{noisy(x, 20, 1), noisy(y, 20, 1)}, DefaultTolerance); keptNames(kept) != "x" {
		t.Errorf("noisy throughputs: kept %s, want x", keptNames(kept))
	}
	// Many tight samples: margin ≈ 1 %, the 20 % is real: y dominates.
	if kept, _ := Prune([]Costed{noisy(x, 1000, 0.2), noisy(y, 1000, 0.2)}, DefaultTolerance); keptNames(kept) != "y" {
		t.Errorf("tight throughputs: kept %s, want y", keptNames(kept))
	}
}

// TestPruneKeepsLargestBatch: a variant with the largest max batch is
// dropped only for another with that max batch, and says why it stayed.
func TestPruneKeepsLargestBatch(t *testing.T) {
	const mib = 1 << 20
	// b8 has a shorter full batch and the same throughput: it dominates
	// b16 on the dimensions, but only b16 serves batches of 9 to 16.
	b8 := costed("b8", 95, 1, 4, 2000, 10*mib, 1000, 0.05, 8)
	b16 := costed("b16", 95, 1, 8, 2000, 10*mib, 1000, 0.05, 16)
	b16slow := costed("b16slow", 95, 2, 16, 1000, 20*mib, 1000, 0.05, 16)
	kept, dropped := Prune([]Costed{b8, b16, b16slow}, DefaultTolerance)
	if keptNames(kept) != "b16,b8" {
		t.Fatalf("kept %s, want b16,b8 (dropped %v)", keptNames(kept), dropped)
	}
	for _, k := range kept {
		switch k.Name {
		case "b16":
			if !strings.Contains(k.KeptBecause, "dominated by b8") || !strings.Contains(k.KeptBecause, "serves batches up to 16") {
				t.Errorf("b16 kept because %q", k.KeptBecause)
			}
		case "b8":
			if k.KeptBecause != "" {
				t.Errorf("b8 kept because %q, want nothing", k.KeptBecause)
			}
		}
	}
	// b16slow is beaten by b16 (same max batch): dropped.
	if len(dropped) != 1 || dropped[0].Name != "b16slow" || !strings.Contains(dropped[0].Reason, "dominated by b16") {
		t.Errorf("dropped %v, want b16slow dominated by b16", dropped)
	}
}

// TestPruneKeepsTheExactModel: when int8 variants dominate every fp32 one,
// the best fp32 variant stays anyway, saying why.
func TestPruneKeepsTheExactModel(t *testing.T) {
	fp := func(name string, p99 float64, mb int) Costed {
		c := costed(name, 90, p99, p99*2, 1000/p99, 10<<20, 4<<20, 0.048, mb)
		c.Precision = FP32
		return c
	}
	q := costed("m.int8.all.t1.b8.cpu", 90, 0.1, 0.2, 10000, 5<<20, 1<<20, 0.048, 8)
	q.Precision = INT8
	kept, dropped := Prune([]Costed{fp("m.fp32.all.t1.b8.cpu", 0.5, 8), fp("m.fp32.all.t1.b1.cpu", 0.4, 1), q}, DefaultTolerance)
	var names []string
	for _, k := range kept {
		names = append(names, k.Name)
		if k.Precision == FP32 && !strings.Contains(k.KeptBecause, "exact (fp32) model") {
			t.Errorf("%s kept without saying why: %q", k.Name, k.KeptBecause)
		}
	}
	if !slices.Equal(names, []string{"m.fp32.all.t1.b8.cpu", "m.int8.all.t1.b8.cpu"}) || len(dropped) != 1 || dropped[0].Name != "m.fp32.all.t1.b1.cpu" {
		t.Fatalf("kept %v, dropped %v", names, dropped)
	}
}

// TestPruneLatencyFloor: p99s and per-sample times closer than the floors
// are equal however far apart their intervals are — microsecond models
// measured in separate processes differ by more than that from one
// registration to the next, and no client can tell.
func TestPruneLatencyFloor(t *testing.T) {
	const mib = 1 << 20
	fast := bounded(costed("fast", 95, 0.05, 0.05, 400000, 10*mib, 1000, 0.05, 1), 0.04, 0.06, 0.04, 0.06)
	slow := bounded(costed("slow", 95, 0.40, 0.40, 200000, 10*mib, 1000, 0.05, 1), 0.38, 0.42, 0.38, 0.42)
	kept, dropped := Prune([]Costed{fast, slow}, DefaultTolerance)
	if len(kept) != 1 || len(dropped) != 1 || !strings.Contains(dropped[0].Reason, "equivalent to") {
		t.Fatalf("kept %s, dropped %v; want one kept, the other equivalent", keptNames(kept), dropped)
	}
	// A millisecond apart is a difference.
	slow = bounded(costed("slow", 95, 1.5, 1.5, 600, 10*mib, 1000, 0.05, 1), 1.4, 1.6, 1.4, 1.6)
	kept, dropped = Prune([]Costed{fast, slow}, DefaultTolerance)
	if keptNames(kept) != "fast" || len(dropped) != 1 || !strings.Contains(dropped[0].Reason, "dominated by fast") {
		t.Fatalf("a millisecond apart: kept %s, dropped %v", keptNames(kept), dropped)
	}
}

// TestPruneExactModelIgnoresNoise: of two fp32 graphs dominated by int8,
// the one kept as the exact model does not depend on which measured a hair
// faster: equally fast within the tolerance, the preferred (lower
// optimisation level) stays in both orders; clearly faster, the faster.
func TestPruneExactModelIgnoresNoise(t *testing.T) {
	fp := func(opt string, p99 float64) Costed {
		c := costed("m.fp32."+opt+".t1.b8.cpu", 90, p99, 4, 1000, 10<<20, 4<<20, 0.048, 8)
		c.OptLevel = opt
		return c
	}
	q := costed("m.int8.basic.t1.b8.cpu", 90, 0.9, 3, 1000, 5<<20, 1<<20, 0.048, 8)
	q.Precision = INT8
	for _, tc := range []struct {
		basic, extended float64
		want            string
	}{
		{2.0, 1.9, "m.fp32.basic.t1.b8.cpu"},
		{1.9, 2.0, "m.fp32.basic.t1.b8.cpu"},
		{2.0, 1.0, "m.fp32.extended.t1.b8.cpu"},
	} {
		kept, _ := Prune([]Costed{fp("extended", tc.extended), fp("basic", tc.basic), q}, DefaultTolerance)
		var fp32 []string
		for _, k := range kept {
			if k.Precision == FP32 {
				fp32 = append(fp32, k.Name)
			}
		}
		if !slices.Equal(fp32, []string{tc.want}) {
			t.Errorf("p99 basic %.1f ms, extended %.1f ms: kept fp32 %v, want %s", tc.basic, tc.extended, fp32, tc.want)
		}
	}
}

// TestPruneKeptBecauseNamesAKeptVariant: b16 is kept though b8a dominates
// it, but b8a is itself dropped for b8b; the reason b16 gives names b8b,
// which the registration kept, not b8a, which it did not.
func TestPruneKeptBecauseNamesAKeptVariant(t *testing.T) {
	const mib = 1 << 20
	b8a := costed("b8a", 95, 1, 4, 2000, 10*mib, 1000, 0.05, 8)
	b8b := costed("b8b", 95, 1, 2, 3000, 8*mib, 1000, 0.05, 8)
	b16 := costed("b16", 95, 1, 8, 2000, 10*mib, 1000, 0.05, 16)
	kept, dropped := Prune([]Costed{b8a, b8b, b16}, DefaultTolerance)
	if keptNames(kept) != "b16,b8b" {
		t.Fatalf("kept %s, want b16,b8b (dropped %v)", keptNames(kept), dropped)
	}
	for _, k := range kept {
		if k.Name == "b16" && (!strings.Contains(k.KeptBecause, "dominated by b8b") || strings.Contains(k.KeptBecause, "b8a")) {
			t.Errorf("b16 kept because %q; want it to name b8b, the kept variant that dominates it", k.KeptBecause)
		}
	}
	// With nothing kept that dominates it, a kept variant gives no reason.
	b8c := costed("b8c", 99, 1, 2, 3000, 8*mib, 1000, 0.05, 8) // beats b8a and b8b; more accurate, slower at b1 than b16x
	b16x := costed("b16x", 95, 0.5, 8, 2000, 10*mib, 1000, 0.05, 16)
	kept, dropped = Prune([]Costed{b8a, b8c, b16x}, DefaultTolerance)
	for _, k := range kept {
		if k.Name == "b16x" && strings.Contains(k.KeptBecause, "b8a") {
			t.Errorf("b16x kept because %q, naming b8a, which was dropped (%v)", k.KeptBecause, dropped)
		}
	}
}
