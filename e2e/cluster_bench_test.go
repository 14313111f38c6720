package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/workerrpc"
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

// BenchmarkProfileByClass profiles one compute-bound two-thread variant
// (mnist-cnn-m, fp32, max batch 32) through the Profile call of a cpu-1
// worker pinned to one core and of a cpu-2 worker pinned to two, and
// reports each class's p50 at batch 32: on one core the two threads take
// turns. Each iteration measures both.
func BenchmarkProfileByClass(b *testing.B) {
	dir := b.TempDir()
	repoDir := filepath.Join(dir, "models")
	repo, err := repository.Open(ctx(b), repoDir)
	if err != nil {
		b.Fatal(err)
	}
	model, err := os.ReadFile(zootest.Path(b, "models/mnist-cnn-m.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	digest, err := repo.Put(ctx(b), model)
	repo.Close()
	if err != nil {
		b.Fatal(err)
	}
	arch := catalog.Architecture{Name: "mnist-cnn-m", Input: catalog.TensorSpec{Name: "x", DataType: "FP32", Shape: []int64{-1, 1, 28, 28}}}
	v := catalog.Variant{Name: "mnist-cnn-m.fp32.basic.t2.b32.cpu", Architecture: arch.Name, Precision: "fp32", OptLevel: "basic",
		Provider: "cpu", Threads: 2, MaxBatch: 32, FileDigest: digest, FileBytes: int64(len(model))}
	workers := map[string]string{"cpu-1": "0", "cpu-2": "0-1"}
	clients := map[string]*workerrpc.Client{}
	for class, cpus := range workers {
		addr := freeAddr(b)
		p := startProc(b, "w-"+class, "worker", "--id", "w-"+class, "--class", class, "--cpus", cpus, "--repository", repoDir,
			"--controller", freeAddr(b), "--listen", addr, "--profile-time", "200ms")
		var cl *workerrpc.Client
		waitFor(b, class+" worker answers", 30*time.Second, func() bool {
			cl, err = workerrpc.Dial(ctx(b), addr, workerrpc.ClientAuth("cluster-test-token")...)
			return err == nil
		}, p)
		b.Cleanup(func() { cl.Close() })
		clients[class] = cl
	}
	p50 := map[string][]float64{}
	b.ResetTimer()
	for range b.N {
		for _, class := range []string{"cpu-1", "cpu-2"} {
			p, err := clients[class].Profile(ctx(b), v, arch)
			if err != nil {
				b.Fatal(err)
			}
			p50[class] = append(p50[class], p.LatencyMs[32].P50)
		}
	}
	for class, xs := range p50 {
		sort.Float64s(xs)
		b.ReportMetric(xs[len(xs)/2], "p50@32-ms-"+class)
	}
}
