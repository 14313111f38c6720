package workload

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestDiurnal(t *testing.T) {
	for _, tt := range []struct {
		spec            string
		low, high       float64
		length          time.Duration
		wantMean, slack float64
	}{
		{"diurnal", 4, 80, 120 * time.Second, 42, 0.01},
		{"diurnal:24h:100:1000", 100, 1000, 24 * time.Hour, 550, 0.1},
		{"diurnal:10s:50:10", 50, 10, 10 * time.Second, 30, 0.01}, // a night shift: HIGH may be below LOW
	} {
		s := mustSchedule(t, tt.spec)
		if s.Duration() != tt.length {
			t.Errorf("%s: Duration() = %v, want %v", tt.spec, s.Duration(), tt.length)
		}
		near := func(at time.Duration, want float64) {
			t.Helper()
			if got := s.Rate(at); math.Abs(got-want) > 1e-6*max(1, math.Abs(want)) {
				t.Errorf("%s: Rate(%v) = %g, want %g", tt.spec, at, got, want)
			}
		}
		near(0, tt.low)
		near(tt.length/2, tt.high)
		near(tt.length-time.Nanosecond, tt.low)
		// Smooth and symmetric: it only rises (or falls) toward the middle,
		// and the evening mirrors the morning.
		prev := s.Rate(0)
		for i := 1; i <= 50; i++ {
			at := time.Duration(i) * tt.length / 100
			r := s.Rate(at)
			if (tt.high-tt.low)*(r-prev) < 0 {
				t.Errorf("%s: Rate(%v) = %g turns back before the middle (previous %g)", tt.spec, at, r, prev)
			}
			prev = r
			near(tt.length-at, r)
		}
		if got := MeanRate(s, 0, tt.length); math.Abs(got-tt.wantMean) > tt.slack {
			t.Errorf("%s: mean rate %g, want (LOW+HIGH)/2 = %g", tt.spec, got, tt.wantMean)
		}
	}
}

func TestBurstyDeterministic(t *testing.T) {
	a := Bursty(time.Minute, 10, 100, 1)
	if b := Bursty(time.Minute, 10, 100, 1); !slices.Equal(a, b) {
		t.Error("one seed gave two schedules")
	}
	if c := Bursty(time.Minute, 10, 100, 2); slices.Equal(a, c) {
		t.Error("two seeds gave one schedule")
	}
	parsed, ok := mustSchedule(t, "bursty").(Steps)
	if !ok || !slices.Equal(parsed, Bursty(120*time.Second, 10, 100, 1)) {
		t.Errorf("bursty is not Bursty(120s, 10, 100, 1): %v", parsed)
	}
	if got := mustSchedule(t, "bursty:1m:10:100:2").(Steps); !slices.Equal(got, Bursty(time.Minute, 10, 100, 2)) {
		t.Error("bursty:1m:10:100:2 is not Bursty(1m, 10, 100, 2)")
	}
}

func TestBurstyShape(t *testing.T) {
	const base, peak = 10.0, 100.0
	for _, length := range []time.Duration{120 * time.Second, time.Hour, 50 * time.Millisecond} {
		for seed := uint64(1); seed <= 10; seed++ {
			s := Bursty(length, base, peak, seed)
			if s.Duration() != length {
				t.Errorf("%v seed %d: Duration() = %v", length, seed, s.Duration())
			}
			for i, st := range s {
				if want := []float64{base, peak}[i%2]; st.QPS != want || st.For <= 0 {
					t.Fatalf("%v seed %d: step %d is %+v; want %g QPS (base and peak alternate, base first) for a positive time", length, seed, i, st, want)
				}
			}
			if length < time.Second {
				continue // too short for the statistics
			}
			// About 17 bursts are expected, whatever the length: the
			// chance of fewer than 3 is about 10⁻⁵.
			if len(s) < 6 || len(s) > 200 {
				t.Errorf("%v seed %d: %d periods; want base and peak periods, about 34", length, seed, len(s))
			}
			if m := MeanRate(s, 0, length); m <= base || m >= peak {
				t.Errorf("%v seed %d: mean rate %g, want between %g and %g", length, seed, m, base, peak)
			}
		}
	}
}

// Over many seeds the share of time at the peak is about 2/7, as the
// model says.
func TestBurstyPeakShare(t *testing.T) {
	var atPeak, total time.Duration
	for seed := uint64(1); seed <= 200; seed++ {
		for _, st := range Bursty(120*time.Second, 0, 1, seed) {
			if st.QPS == 1 {
				atPeak += st.For
			}
			total += st.For
		}
	}
	if share := float64(atPeak) / float64(total); math.Abs(share-2.0/7) > 0.03 {
		t.Errorf("%.3f of the time at the peak, want about 2/7 = %.3f", share, 2.0/7)
	}
}

// hidden hides a schedule's type, so that Arrivals reads it through Rate.
type hidden struct{ Schedule }

// Arrivals reads a Steps schedule with a cursor; the arrivals are the same
// as through Rate, and Next allocates nothing.
func TestArrivalsStepsCursor(t *testing.T) {
	s := Bursty(20*time.Second, 50, 400, 3)
	for _, kind := range []ArrivalKind{Poisson, Fixed} {
		a := NewArrivals(s, kind, rand.New(rand.NewPCG(9, 1)))
		b := NewArrivals(hidden{s}, kind, rand.New(rand.NewPCG(9, 1)))
		n := 0
		for {
			x, okA := a.Next()
			y, okB := b.Next()
			if x != y || okA != okB {
				t.Fatalf("%s arrival %d: %v, %v through the cursor; %v, %v through Rate", kind, n, x, okA, y, okB)
			}
			if !okA {
				break
			}
			n++
		}
		if n < 1000 {
			t.Errorf("%s: only %d arrivals", kind, n)
		}
	}
	a := NewArrivals(s, Poisson, rand.New(rand.NewPCG(9, 1)))
	if allocs := testing.AllocsPerRun(1000, func() { a.Next() }); allocs != 0 {
		t.Errorf("Next allocates %g times", allocs)
	}
}
