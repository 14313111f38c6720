package catalog

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestP99At(t *testing.T) {
	p := Profile{LatencyMs: map[int]Latency{1: {P99: 1}, 4: {P99: 2.5}, 8: {P99: 4.5}}}
	for _, tc := range []struct {
		b    int
		want float64
	}{{1, 1}, {2, 1.5}, {4, 2.5}, {6, 3.5}, {8, 4.5}, {16, 8.5}} {
		if got := p.P99At(tc.b); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("P99At(%d) = %v, want %v", tc.b, got, tc.want)
		}
	}
	one := Profile{LatencyMs: map[int]Latency{1: {P99: 2}}}
	if got := one.P99At(3); got != 6 {
		t.Errorf("single point: P99At(3) = %v, want 6 (linear through the origin)", got)
	}
	if got := (Profile{}).P99At(1); got != 0 {
		t.Errorf("empty profile: %v", got)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"mnist-cnn-m", "a", "A_1", "x-" + string(make([]byte, 0))} {
		if err := ValidateName("name", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../x", "a/b", "a.b", "-a", "a b", "é", string(make([]byte, 64))} {
		if err := ValidateName("name", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCostPerHour(t *testing.T) {
	h := HardwareClass{Provider: "cpu", Cores: 4, PricePerHour: 0.2}
	if got := h.CostPerHour(2); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("2 of 4 cores: %v", got)
	}
	if got := h.CostPerHour(9); math.Abs(got-0.2) > 1e-12 {
		t.Errorf("more threads than cores pays for all cores: %v", got)
	}
	g := HardwareClass{Provider: "cuda", Cores: 8, PricePerHour: 3}
	if got := g.CostPerHour(1); got != 3 {
		t.Errorf("gpu pays the whole device: %v", got)
	}
	if got := h.CostPerQuery(4, 1000); math.Abs(got-0.2/3600/1000) > 1e-15 {
		t.Errorf("cost per query: %v", got)
	}
}

func TestProfileThroughputAt(t *testing.T) {
	p := Profile{LatencyMs: map[int]Latency{1: {P50: 2, P99: 4}, 8: {P50: 8, P99: 20}}}
	for _, c := range []struct {
		b        int
		p50, thr float64
	}{{1, 2, 500}, {8, 8, 1000}, {4, 2 + 6*3.0/7, 4000 / (2 + 6*3.0/7)}} {
		if got := p.P50At(c.b); math.Abs(got-c.p50) > 1e-9 {
			t.Errorf("P50At(%d) = %v, want %v", c.b, got, c.p50)
		}
		if got := p.ThroughputAt(c.b); math.Abs(got-c.thr) > 1e-9 {
			t.Errorf("ThroughputAt(%d) = %v, want %v", c.b, got, c.thr)
		}
	}
	if got := (Profile{}).ThroughputAt(4); got != 0 {
		t.Errorf("unprofiled throughput %v, want 0", got)
	}
}

// TestAtMatchesSortedInterpolation checks the single-pass interpolation
// against the obvious one (sort the sizes, find the segment) on random
// profiles, and that it allocates nothing.
func TestAtMatchesSortedInterpolation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		p := Profile{LatencyMs: map[int]Latency{}}
		for range 1 + rng.IntN(6) {
			p.LatencyMs[1+rng.IntN(64)] = Latency{P50: rng.Float64() * 10, P99: rng.Float64() * 20}
		}
		bs := p.Batches()
		for b := 1; b <= 80; b++ {
			want := 0.0
			switch i := sort.SearchInts(bs, b); {
			case len(bs) == 1:
				want = p.LatencyMs[bs[0]].P99 * float64(b) / float64(bs[0])
			case i < len(bs) && bs[i] == b:
				want = p.LatencyMs[b].P99
			default:
				lo, hi := i-1, i
				if i == 0 {
					lo, hi = 0, 1
				} else if i == len(bs) {
					lo, hi = len(bs)-2, len(bs)-1
				}
				y0, y1 := p.LatencyMs[bs[lo]].P99, p.LatencyMs[bs[hi]].P99
				want = max(0, y0+(y1-y0)*float64(b-bs[lo])/float64(bs[hi]-bs[lo]))
			}
			if got := p.P99At(b); math.Abs(got-want) > 1e-9 {
				t.Fatalf("%v: P99At(%d) = %v, want %v", p.LatencyMs, b, got, want)
			}
		}
	}
	p := Profile{LatencyMs: map[int]Latency{1: {P99: 1}, 4: {P99: 3}, 16: {P99: 9}}}
	if n := testing.AllocsPerRun(100, func() { p.P99At(7); p.ThroughputAt(32) }); n != 0 {
		t.Errorf("P99At and ThroughputAt allocate %v times per call", n)
	}
}
