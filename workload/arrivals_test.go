package workload

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func arrivalTimes(t *testing.T, spec string, kind ArrivalKind, seed uint64) []time.Duration {
	t.Helper()
	s, err := ParseSchedule(spec)
	if err != nil {
		t.Fatal(err)
	}
	a := NewArrivals(s, kind, rand.New(rand.NewPCG(seed, 1)))
	var out []time.Duration
	for {
		at, ok := a.Next()
		if !ok {
			return out
		}
		out = append(out, at)
	}
}

// A Poisson process's count over a load Λ has mean Λ and standard
// deviation √Λ: every seed's count stays within 5σ.
func TestPoissonCount(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want float64 // ∫rate
	}{
		{"constant:200:10s", 2000},
		{"ramp:0:400:10s", 2000},
		{"fluctuating:20s", 840},
		{"steps:50@2s,0@3s,500@1s", 600},
	} {
		for seed := uint64(1); seed <= 5; seed++ {
			times := arrivalTimes(t, tt.spec, Poisson, seed)
			if d := math.Abs(float64(len(times)) - tt.want); d > 5*math.Sqrt(tt.want) {
				t.Errorf("%s seed %d: %d arrivals, want %g ± %.0f", tt.spec, seed, len(times), tt.want, 5*math.Sqrt(tt.want))
			}
			if !slices.IsSorted(times) {
				t.Errorf("%s seed %d: arrivals out of order", tt.spec, seed)
			}
		}
	}
}

func TestPoissonDeterministic(t *testing.T) {
	a := arrivalTimes(t, "constant:100:5s", Poisson, 42)
	b := arrivalTimes(t, "constant:100:5s", Poisson, 42)
	c := arrivalTimes(t, "constant:100:5s", Poisson, 43)
	if !slices.Equal(a, b) {
		t.Error("one seed gave two sequences")
	}
	if slices.Equal(a, c) {
		t.Error("two seeds gave one sequence")
	}
}

// Poisson gaps at a constant rate are exponential: their mean is 1/rate and
// their coefficient of variation 1.
func TestPoissonGaps(t *testing.T) {
	times := arrivalTimes(t, "constant:100:60s", Poisson, 7)
	var sum, sq float64
	for i := 1; i < len(times); i++ {
		g := (times[i] - times[i-1]).Seconds()
		sum += g
		sq += g * g
	}
	n := float64(len(times) - 1)
	mean := sum / n
	cv := math.Sqrt(sq/n-mean*mean) / mean
	if math.Abs(mean-0.01) > 0.0005 || math.Abs(cv-1) > 0.05 {
		t.Errorf("gaps: mean %.5f s (want 0.01), coefficient of variation %.3f (want 1)", mean, cv)
	}
}

func TestNoArrivalsAtZeroRate(t *testing.T) {
	times := arrivalTimes(t, "steps:0@2s,10@1s,0@2s", Poisson, 3)
	for _, at := range times {
		if at < 2*time.Second || at > 3*time.Second {
			t.Errorf("arrival at %v, while the rate is 0", at)
		}
	}
}

func TestFixedArrivals(t *testing.T) {
	times := arrivalTimes(t, "constant:50:2s", Fixed, 0)
	if len(times) != 100 {
		t.Fatalf("%d arrivals, want 100", len(times))
	}
	for i := 1; i < len(times); i++ {
		if g := times[i] - times[i-1]; g < 19900*time.Microsecond || g > 20100*time.Microsecond {
			t.Fatalf("gap %d is %v, want 20ms", i, g)
		}
	}
	if n := len(arrivalTimes(t, "steps:10@1s,100@1s", Fixed, 0)); n != 110 {
		t.Errorf("steps: %d arrivals, want 110", n)
	}
	if n := len(arrivalTimes(t, "ramp:0:100:10s", Fixed, 0)); n < 499 || n > 501 {
		t.Errorf("ramp: %d arrivals, want 500", n)
	}
}

// The arrivals read a Linear schedule through a cursor; its rates must be
// the schedule's own, at its points, between them, outside it and when a
// time goes back.
func TestLinearCursorMatchesRate(t *testing.T) {
	l := Linear{{0, 4}, {10 * time.Second, 80}, {10 * time.Second, 20}, {25 * time.Second, 20}, {40 * time.Second, 650}}
	var sweep []time.Duration
	for ms := 0; ms < 41000; ms += 7 {
		sweep = append(sweep, time.Duration(ms)*time.Millisecond)
	}
	odd := []time.Duration{-time.Second, 0, time.Nanosecond, 5 * time.Second, 10*time.Second - 1, 10 * time.Second,
		10*time.Second + 1, 17 * time.Second, 25 * time.Second, 39 * time.Second, 3 * time.Second, 30 * time.Second,
		40 * time.Second, time.Minute}
	for _, times := range [][]time.Duration{sweep, odd} {
		c := linearCursor{points: l}
		for _, at := range times {
			if got, want := c.rate(at), l.Rate(at); got != want {
				t.Fatalf("rate at %s: cursor %v, Linear.Rate %v", at, got, want)
			}
		}
	}
}
