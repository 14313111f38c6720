package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/infaas/infaas/api/inferencepb"
)

// BenchmarkClusterThroughput measures model-less throughput of a
// compute-bound zoo model (mnist-cnn-m, batch-1 queries over gRPC with a
// 5 ms target, 16 clients in a closed loop) with 1, 2 and 3 local
// one-core workers (`infaas serve --workers cpu-1,...`). Each worker is
// pinned to its own core in turn, so on a 2-core machine the third shares
// a core with the first. It reports requests per second and how many
// workers ended up with a replica.
func BenchmarkClusterThroughput(b *testing.B) {
	dir := b.TempDir()
	s := startServer(b, dir, "--workers", "cpu-1")
	s.registerZoo(b, "mnist-cnn-m")
	s.stop()
	set := mnist(b)
	raw := rawFP32(set, 0, 1)
	req := &pb.ModelInferRequest{ModelName: "mnist-cnn-m", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{raw},
		Parameters: map[string]*pb.InferParameter{"latency_ms": {ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: 5}}}}
	for n := 1; n <= 3; n++ {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			s := startServer(b, dir, "--workers", strings.TrimSuffix(strings.Repeat("cpu-1,", n), ","))
			defer s.stop()
			gc := grpcClient(b, s)
			c := ctx(b)
			// Warm up: enough load, long enough, for the dispatcher to add
			// replicas where the first one cannot meet the target.
			var wg sync.WaitGroup
			stop := time.Now().Add(3 * time.Second)
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) {
						_, _ = gc.ModelInfer(c, req)
					}
				}()
			}
			wg.Wait()
			var mu sync.Mutex
			served := map[string]int{}
			failed := 0
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(p *testing.PB) {
				local := map[string]int{}
				bad := 0
				for p.Next() {
					res, err := gc.ModelInfer(c, req)
					if err != nil {
						bad++
						continue
					}
					local[res.Parameters["worker"].GetStringParam()]++
				}
				mu.Lock()
				for k, v := range local {
					served[k] += v
				}
				failed += bad
				mu.Unlock()
			})
			el := time.Since(start)
			b.ReportMetric(float64(b.N-failed)/el.Seconds(), "answered/s")
			b.ReportMetric(float64(failed)/float64(b.N), "refused-frac")
			b.ReportMetric(float64(len(served)), "workers-used")
		})
	}
}
