package workerrpc

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/validation"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// TestMain refuses to run without ONNX Runtime: these tests serve real
// models, and skipping would hide that nothing ran.
func TestMain(m *testing.M) {
	if err := executor.Init(); err != nil {
		fmt.Fprintf(os.Stderr, "workerrpc tests need ONNX Runtime: %v\n", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// mlpProfile is a generous hand-written profile of mnist-mlp-m (p99 ms per
// batch size, a few times what a 2-core machine measures), as in the
// worker's tests, so admission does not depend on the test machine.
var mlpProfile = catalog.Profile{PeakMemoryBytes: 4 << 20, ThroughputQPS: 40000,
	LatencyMs: map[int]catalog.Latency{1: {P50: 0.02, P99: 0.1}, 16: {P50: 0.04, P99: 0.3}, 64: {P50: 0.1, P99: 1.0}}}

// zoo is a model repository on a temporary directory holding mnist-mlp-m,
// and the MNIST validation set.
type zoo struct {
	repo  *repository.Repository
	mnist *validation.Set
	pix   []byte // every MNIST image as FP32 0–255
	model []byte // mnist-mlp-m.onnx
}

func newZoo(t testing.TB) *zoo {
	t.Helper()
	ctx := context.Background()
	repo, err := repository.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	set := zootest.Validation(t, "mnist")
	model := zootest.Model(t, "mnist-mlp-m")
	if _, err := repo.Put(ctx, model); err != nil {
		t.Fatal(err)
	}
	return &zoo{repo: repo, mnist: set, pix: set.FP32(1), model: model}
}

// variant is a one-thread CPU variant of mnist-mlp-m and its architecture
// (inputs are 0–255 pixels, scaled by 1/255 for the model).
func (z *zoo) variant(maxBatch int) (catalog.Variant, catalog.Architecture) {
	const name = "mnist-mlp-m"
	v := catalog.Variant{
		Name:         catalog.VariantName(name, "fp32", executor.OptAll, 1, maxBatch, executor.ProviderCPU),
		Architecture: name, Precision: "fp32", OptLevel: executor.OptAll, Provider: executor.ProviderCPU,
		Hardware: "cpu", Threads: 1, MaxBatch: maxBatch,
		FileDigest: repository.Digest(z.model), FileBytes: int64(len(z.model)),
		Profile: mlpProfile,
	}
	io, err := executor.Inspect(z.model)
	if err != nil {
		panic(err)
	}
	return v, catalog.Architecture{Name: name, Task: "classification", Dataset: "mnist", Contract: io, InputScale: 1.0 / 255, DynamicBatch: true}
}

// pixels wraps raw samples as the zoo models' one input tensor.
func pixels(data []byte) []inference.Tensor {
	n := max(len(data)/(784*4), 1)
	return []inference.Tensor{{Name: "input", Datatype: "FP32", Shape: []int64{int64(n), 1, 28, 28}, Data: data}}
}

// raw returns samples [from, from+n) of MNIST as FP32 bytes in 0–255.
func (z *zoo) raw(from, n int) []byte {
	size := 4 * z.mnist.SampleSize
	return z.pix[from*size : (from+n)*size : (from+n)*size]
}

func newWorker(t testing.TB, blobs worker.Blobs, mutate func(*worker.Config)) *worker.Worker {
	t.Helper()
	cfg := worker.Config{ID: "w1", Hardware: catalog.LocalCPU(), MemoryBytes: 1 << 30}
	if mutate != nil {
		mutate(&cfg)
	}
	w, err := worker.New(cfg, blobs)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// run starts w.Run and stops it at the end of the test, checking that it
// returned cleanly. The returned function stops it earlier.
func run(t testing.TB, w *worker.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	// Run marks the worker running from its own goroutine: a test that
	// reads the state at once could see it not running yet (one did).
	for deadline := time.Now().Add(10 * time.Second); !w.State().Running; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker is not running 10 s after Run")
		}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// serve exposes w on a real grpc.Server on 127.0.0.1:0 and dials it. The
// client and the server are closed at the end of the test (before the
// worker stops, when run was called first).
func serve(t testing.TB, w *worker.Worker) *Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(ServerOptions()...)
	workerpb.RegisterWorkerServer(gs, NewServer(w))
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// gatedBlobs holds every Get until release is closed, announcing each on
// entered, so a test can catch a replica while it loads.
type gatedBlobs struct {
	worker.Blobs
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBlobs) Get(ctx context.Context, digest string) ([]byte, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Blobs.Get(ctx, digest)
}

// argmax returns the index of the largest of each row of a [n, classes]
// FP32 output.
func argmax(out []byte, classes int) []int {
	n := len(out) / 4 / classes
	res := make([]int, n)
	for i := range n {
		best := float32(math.Inf(-1))
		for c := range classes {
			v := math.Float32frombits(binary.LittleEndian.Uint32(out[4*(i*classes+c):]))
			if v > best {
				best, res[i] = v, c
			}
		}
	}
	return res
}
