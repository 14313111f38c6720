package workerrpc

import (
	"context"
	"testing"

	"github.com/infaas/infaas/worker"
)

// BenchmarkInferLocal and BenchmarkInferGRPC send one MNIST image (batch 1)
// to a replica of mnist-mlp-m (1 intra-op thread, max batch 1) through the
// in-process worker and through the gRPC client over loopback; the
// difference is what the gRPC hop costs. "serial" is one client waiting
// for each answer (latency); "parallel" is GOMAXPROCS clients (throughput,
// including the replica's queue). Each reports µs/op.
func BenchmarkInferLocal(b *testing.B) {
	benchInfer(b, func(_ testing.TB, w *worker.Worker) workerAPI { return Local{w} })
}

func BenchmarkInferGRPC(b *testing.B) {
	benchInfer(b, func(b testing.TB, w *worker.Worker) workerAPI { return serve(b, w) })
}

func benchInfer(b *testing.B, api func(testing.TB, *worker.Worker) workerAPI) {
	z := newZoo(b)
	w := newWorker(b, z.repo, nil)
	run(b, w)
	c := api(b, w)
	ctx := context.Background()
	v, a := z.variant(1)
	id, err := c.Load(ctx, v, a)
	if err != nil {
		b.Fatal(err)
	}
	req := worker.Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}
	for range 100 { // warm up the connection and the session
		if _, err := c.Infer(ctx, id, req); err != nil {
			b.Fatal(err)
		}
	}
	perOp := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N), "µs/op")
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Infer(ctx, id, req); err != nil {
				b.Fatal(err)
			}
		}
		perOp(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Infer(ctx, id, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		perOp(b)
	})
}
