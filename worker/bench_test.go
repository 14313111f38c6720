package worker

import (
	"context"
	"fmt"
	"math"
	"slices"
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
			r := Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}
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
				if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, n)), Batch: n}); err != nil {
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

// BenchmarkTightTarget sends isolated one-image requests with a 1 ms
// deadline to a replica that could batch (max batch 8), each after the
// replica sat idle for a while, as a client with a tight target and no
// concurrent traffic does. It reports percentiles of the time inside the
// worker (Infer called to Infer returned) and how many requests in 1,000
// took longer than 1 ms and longer than 0.5 ms, with the median queue and
// compute times they report. "fresh" loads a new replica before every
// request and measures its first one, batch 1 or a full batch of 8.
//
// The timing is the machine's: compare runs on the same machine only.
func BenchmarkTightTarget(b *testing.B) {
	z := newZoo(b)
	const target = time.Millisecond
	measure := func(b *testing.B, w *Worker, id func() string, batch int, gap time.Duration) {
		ctx := context.Background()
		var lat, queue, compute []time.Duration
		b.ResetTimer()
		for i := range b.N {
			rid := id()
			if gap > 0 {
				time.Sleep(gap)
			}
			start := time.Now()
			resp, err := w.Infer(ctx, rid, Request{Inputs: pixels(z.raw(i%900, batch)), Batch: batch, Deadline: start.Add(target)})
			d := time.Since(start)
			if err != nil && !isOverloaded(err) { // shed late: counts as a miss
				b.Fatal(err)
			}
			lat = append(lat, d)
			queue = append(queue, resp.QueueTime)
			compute = append(compute, resp.ComputeTime)
		}
		b.StopTimer()
		reportTail(b, lat, target)
		b.ReportMetric(us(quantile(queue, 0.5)), "queue-p50-µs")
		b.ReportMetric(us(quantile(compute, 0.5)), "compute-p50-µs")
	}
	for _, gap := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("steady/gap=%v", gap), func(b *testing.B) {
			v, arch := z.variant(b, "mnist-mlp-m", 8, 1.0/255)
			w := newWorker(b, z, nil)
			run(b, w)
			id := load(b, w, v, arch)
			measure(b, w, func() string { return id }, 1, gap)
		})
	}
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("fresh/batch=%d", batch), func(b *testing.B) {
			v, arch := z.variant(b, "mnist-mlp-m", 8, 1.0/255)
			w := newWorker(b, z, nil)
			run(b, w)
			prev := ""
			measure(b, w, func() string {
				b.StopTimer()
				defer b.StartTimer()
				if prev != "" {
					if err := w.Unload(prev); err != nil {
						b.Fatal(err)
					}
				}
				prev = load(b, w, v, arch)
				return prev
			}, batch, 0)
		})
	}
}

// reportTail reports latency percentiles in µs and how many of every
// 1,000 requests took longer than target and than half of it.
func reportTail(b *testing.B, lat []time.Duration, target time.Duration) {
	over, half := 0, 0
	for _, d := range lat {
		if d > target {
			over++
		}
		if d > target/2 {
			half++
		}
	}
	b.ReportMetric(us(quantile(lat, 0.5)), "p50-µs")
	b.ReportMetric(us(quantile(lat, 0.99)), "p99-µs")
	b.ReportMetric(us(quantile(lat, 1)), "max-µs")
	b.ReportMetric(1000*float64(over)/float64(len(lat)), "over-target/1k")
	b.ReportMetric(1000*float64(half)/float64(len(lat)), "over-half/1k")
}

// quantile returns the q-quantile of ds (sorting a copy).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
