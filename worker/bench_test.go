package worker

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkReplicaBatching drives one replica of mnist-mlp-l (1 intra-op
// thread) with 32×GOMAXPROCS concurrent clients sending one image each,
// with max batch 1 (no batching) and 16 (dynamic batching). With a 50 ms
// deadline the batcher may hold a request up to the max queue delay (2 ms)
// to fill a batch; without one it batches what queued while the previous
// batch ran. Reports served requests per second, the average executed
// batch, and p99 latencies inside the worker.
func BenchmarkReplicaBatching(b *testing.B) {
	z := newZoo(b)
	for _, bc := range []struct {
		maxBatch int
		deadline time.Duration
	}{{1, 50 * time.Millisecond}, {16, 0}, {16, 50 * time.Millisecond}} {
		name := fmt.Sprintf("maxbatch=%d/deadline=%v", bc.maxBatch, bc.deadline)
		if bc.deadline == 0 {
			name = fmt.Sprintf("maxbatch=%d/deadline=none", bc.maxBatch)
		}
		maxBatch := bc.maxBatch
		req := func() Request {
			r := Request{Input: z.raw(0, 1), Batch: 1}
			if bc.deadline > 0 {
				r.Deadline = time.Now().Add(bc.deadline)
			}
			return r
		}
		b.Run(name, func(b *testing.B) {
			v, arch := z.variant(b, "mnist-mlp-l", maxBatch, 1.0/255)
			w := newWorker(b, z, nil)
			run(b, w)
			id := load(b, w, v, arch)
			ctx := context.Background()
			// Warm up every batch size ONNX Runtime will see.
			for n := 1; n <= maxBatch; n++ {
				if _, err := w.Infer(ctx, id, Request{Input: z.raw(0, n), Batch: n}); err != nil {
					b.Fatal(err)
				}
			}
			b.SetParallelism(32) // 32 × GOMAXPROCS clients
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, err := w.Infer(ctx, id, req())
					for isOverloaded(err) { // back off and retry, as a client would
						time.Sleep(100 * time.Microsecond)
						_, err = w.Infer(ctx, id, req())
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			s := replicaStats(b, w, id)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(s.AvgBatch, "batch")
			b.ReportMetric(float64(s.LatencyP99)/float64(time.Millisecond), "p99-ms")
			b.ReportMetric(float64(s.ComputeP99)/float64(time.Millisecond), "compute-p99-ms")
		})
	}
}
