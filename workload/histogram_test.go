package workload

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var exact []time.Duration
	for range 100000 {
		// log-normal latencies around a few milliseconds, with a long tail
		d := time.Duration(math.Exp(rng.NormFloat64()*1.2+1) * float64(time.Millisecond))
		h.Record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
		want := exact[max(int(math.Ceil(q*float64(len(exact))))-1, 0)]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("q%g = %v, exact %v (%.2f%% off)", q, got, want, 100*rel)
		}
	}
	if h.Count() != 100000 || h.Max() != exact[len(exact)-1] {
		t.Errorf("count %d, max %v", h.Count(), h.Max())
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets grow with values and a value lies near its bucket's middle.
	prev := -1
	for v := uint64(0); v < 1<<40; v += 1 + v/1000 {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucket of %d is %d after %d", v, i, prev)
		}
		prev = i
		if mid := bucketMid(i); math.Abs(mid-float64(v)) > float64(v)/128+0.5 {
			t.Fatalf("value %d in bucket %d whose middle is %g", v, i, mid)
		}
	}
}

func TestHistogramMergeAndEmpty(t *testing.T) {
	var a, b, empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("an empty histogram should report 0")
	}
	for i := 1; i <= 100; i++ {
		a.Record(time.Duration(i) * time.Millisecond)
		b.Record(time.Duration(i+100) * time.Millisecond)
	}
	a.Merge(&b)
	a.Merge(&empty)
	if a.Count() != 200 || a.Max() != 200*time.Millisecond {
		t.Errorf("merged: count %d, max %v", a.Count(), a.Max())
	}
	if p := a.Quantile(0.5); p < 99*time.Millisecond || p > 101*time.Millisecond {
		t.Errorf("merged median %v, want 100ms", p)
	}
	a.Record(-time.Second)
	if a.Quantile(0) != 0 {
		t.Error("a negative latency should count as 0")
	}
}
