package selection

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var benchSizes = struct{ variants, workers []int }{[]int{10, 100, 1000}, []int{1, 10, 100}}

// benchWorld is a realistic world: V variants over V/10 architectures in
// up to four use cases, W workers, min(V/2, 10·W) replicas, fixed seed.
func benchWorld(b *testing.B, nv, nw int) (*Snapshot, *world) {
	rng := rand.New(rand.NewPCG(1, uint64(nv)<<16|uint64(nw)))
	w := genWorld(rng, nv, nw, false)
	s, err := NewSnapshot(w.cat, w.st)
	if err != nil {
		b.Fatal(err)
	}
	return s, &w
}

// BenchmarkSelect measures fully model-less (use-case) requests with mixed
// latency targets, accuracies and batches, so the mix includes loaded hits
// (rule 3, early exit) and misses (a full scan of the use case).
func BenchmarkSelect(b *testing.B) {
	for _, nv := range benchSizes.variants {
		for _, nw := range benchSizes.workers {
			b.Run(fmt.Sprintf("variants=%d/workers=%d", nv, nw), func(b *testing.B) {
				s, w := benchWorld(b, nv, nw)
				reqs := useCaseRequests(rand.New(rand.NewPCG(2, 2)), w, 256)
				var d Decision
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					Select(s, &reqs[i&255], t0, &d)
				}
			})
		}
	}
}

// BenchmarkSelectMiss measures the worst case: a target no replica can
// meet (1 ns; the fastest generated profile takes about 1 µs), so rule 3
// fails and every candidate of the use case is scanned.
func BenchmarkSelectMiss(b *testing.B) {
	for _, nv := range benchSizes.variants {
		for _, nw := range benchSizes.workers {
			b.Run(fmt.Sprintf("variants=%d/workers=%d", nv, nw), func(b *testing.B) {
				s, w := benchWorld(b, nv, nw)
				r := Request{Kind: KindUseCase, Name: w.usecases[0], LatencyMs: 1e-6}
				var d Decision
				b.ReportAllocs()
				for b.Loop() {
					Select(s, &r, t0, &d)
				}
				if d.Reason == ReasonLoaded {
					b.Fatal("not a miss")
				}
			})
		}
	}
}

// BenchmarkExplain is the cost of an explanation (it allocates by design).
func BenchmarkExplain(b *testing.B) {
	s, w := benchWorld(b, 1000, 100)
	reqs := useCaseRequests(rand.New(rand.NewPCG(2, 2)), w, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = Explain(s, &reqs[i&255], t0)
	}
}

// BenchmarkNewSnapshot and BenchmarkWithState are the controller's costs
// of a full rebuild and of a state refresh, at 1000 variants and 100
// workers.
func BenchmarkNewSnapshot(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	w := genWorld(rng, 1000, 100, false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewSnapshot(w.cat, w.st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWithState(b *testing.B) {
	s, w := benchWorld(b, 1000, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.WithState(w.st); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchmarkMix reports which rules the BenchmarkSelect requests hit
// (go test -run BenchmarkMix -v), so the numbers can be read.
func TestBenchmarkMix(t *testing.T) {
	for _, nv := range benchSizes.variants {
		rng := rand.New(rand.NewPCG(1, uint64(nv)<<16|100))
		w := genWorld(rng, nv, 100, false)
		s := mustSnapshot(t, w.cat, w.st)
		mix := map[Reason]int{}
		for _, r := range useCaseRequests(rand.New(rand.NewPCG(2, 2)), &w, 256) {
			var d Decision
			Select(s, &r, t0, &d)
			mix[d.Reason]++
		}
		t.Logf("variants=%d/workers=100: %d replicas, %v", nv, s.NumReplicas(), mix)
	}
}
