package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/workerrpc"
)

// BenchmarkClusterThroughput measures the throughput of a compute-bound
// zoo model (mnist-cnn-m, batch-1 queries over gRPC to the architecture
// with a 20 ms target, 16 clients in a closed loop) through one
// `infaas controller` with 1, 2 and 3 `infaas worker` processes of class
// cpu-1, each pinned to one core in turn (on a 2-core machine the third
// shares a core with the first). The same variant is loaded on every
// worker through the worker plane first — adding replicas under load is
// the model autoscaler's job, not this benchmark's — so the figure is what
// the dispatcher and the workers sustain together. It reports answered
// requests per second and how many workers served them.
func BenchmarkClusterThroughput(b *testing.B) {
	dir := b.TempDir()
	repoDir := filepath.Join(dir, "models")
	ctrl := startController(b, "ctrl", dir, "", "--store", "bolt", "--workers", "")
	s := &server{t: b, c: ctrl.c, log: ctrl.log}
	s.registerZoo(b, "mnist-cnn-m")
	arch, err := ctrl.c.Architecture(ctx(b), "mnist-cnn-m")
	if err != nil {
		b.Fatal(err)
	}
	raw := rawFP32(mnist(b), 0, 1)
	conn, err := grpc.NewClient(ctrl.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	gc := pb.NewGRPCInferenceServiceClient(conn)
	req := &pb.ModelInferRequest{ModelName: "mnist-cnn-m", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{raw},
		Parameters: map[string]*pb.InferParameter{"latency_ms": {ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: 20}}}}
	for n := 1; n <= 3; n++ {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			var ids []string
			for i := range n {
				id := fmt.Sprintf("w%d", i+1)
				p := startWorkerProc(b, id, "cpu-1", cpuList(b, i, 1), repoDir, ctrl.cluster)
				defer p.kill()
				ids = append(ids, id)
			}
			waitFor(b, "workers joined", 30*time.Second, func() bool { return len(ctrl.running()) == n }, ctrl.proc)
			// The cpu-1 profiles (measured in the background when the first
			// cpu-1 worker joined) price and estimate the replicas.
			var v catalog.Variant
			waitFor(b, "cpu-1 profiles", 2*time.Minute, func() bool {
				vs, err := ctrl.c.Variants(ctx(b), "mnist-cnn-m")
				if err != nil || len(vs) == 0 {
					return false
				}
				for _, x := range vs {
					if _, ok := x.ProfileOn("cpu-1"); !ok {
						return false
					}
				}
				// The largest max batch a one-core worker can run.
				vs = slices.DeleteFunc(vs, func(x catalog.Variant) bool { return x.Threads > 1 })
				sort.Slice(vs, func(i, j int) bool { return vs[i].MaxBatch > vs[j].MaxBatch })
				if len(vs) == 0 {
					b.Fatal("no one-thread variant of mnist-cnn-m was kept")
				}
				v = vs[0]
				return true
			}, ctrl.proc)
			for _, id := range ids {
				cl, err := workerrpc.Dial(ctx(b), ctrl.workerInfo(id).Address, workerrpc.ClientAuth("cluster-test-token")...)
				if err != nil {
					b.Fatal(err)
				}
				onClass, _ := v.OnClass("cpu-1")
				if _, err := cl.Load(ctx(b), onClass, arch); err != nil {
					b.Fatal(err)
				}
				cl.Close()
			}
			c := ctx(b)
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
			b.StopTimer()
			b.ReportMetric(float64(b.N-failed)/el.Seconds(), "answered/s")
			b.ReportMetric(float64(failed)/float64(b.N), "refused-frac")
			b.ReportMetric(float64(len(served)), "workers-used")
			b.Logf("%s on %d workers: %v answered, %d refused", v.Name, n, served, failed)
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
	arch := catalog.Architecture{Name: "mnist-cnn-m", Contract: catalog.Contract{Batched: true,
		Inputs:  []catalog.TensorSpec{{Name: "input", DataType: "FP32", Shape: []int64{-1, 1, 28, 28}}},
		Outputs: []catalog.TensorSpec{{Name: "logits", DataType: "FP32", Shape: []int64{-1, 10}}}}}
	v := catalog.Variant{Name: "mnist-cnn-m.fp32.basic.t2.b32.cpu", Architecture: arch.Name, Precision: "fp32", OptLevel: "basic",
		Provider: "cpu", Threads: 2, MaxBatch: 32, FileDigest: digest, FileBytes: int64(len(model))}
	workers := map[string]string{"cpu-1": cpuList(b, 0, 1), "cpu-2": cpuList(b, 0, 2)}
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
