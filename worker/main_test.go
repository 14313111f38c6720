package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/validation"
)

// TestMain refuses to run without ONNX Runtime: these tests exercise the
// real runtime on real models, and skipping would hide that nothing ran.
func TestMain(m *testing.M) {
	if err := executor.Init(); err != nil {
		fmt.Fprintf(os.Stderr, "worker tests need ONNX Runtime: %v\n", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// zooProfiles are generous hand-written profiles (p99 ms per batch size) for
// the zoo models, a few times what a 2-core machine measures, so
// admission and batching decisions do not depend on the test machine.
var zooProfiles = map[string]catalog.Profile{
	"mnist-mlp-m": {PeakMemoryBytes: 4 << 20, ThroughputQPS: 40000,
		LatencyMs: map[int]catalog.Latency{1: {P50: 0.02, P99: 0.1}, 16: {P50: 0.04, P99: 0.3}, 64: {P50: 0.1, P99: 1.0}}},
	"mnist-mlp-l": {PeakMemoryBytes: 32 << 20, ThroughputQPS: 20000,
		LatencyMs: map[int]catalog.Latency{1: {P50: 0.07, P99: 0.3}, 16: {P50: 0.25, P99: 1.0}, 64: {P50: 0.8, P99: 3.0}}},
	"mnist-cnn-s": {PeakMemoryBytes: 2 << 20, ThroughputQPS: 50000,
		LatencyMs: map[int]catalog.Latency{1: {P50: 0.01, P99: 0.1}, 16: {P50: 0.03, P99: 0.3}}},
	"mnist-8": {PeakMemoryBytes: 2 << 20, ThroughputQPS: 10000,
		LatencyMs: map[int]catalog.Latency{1: {P50: 0.03, P99: 0.2}}},
}

// zoo holds a model repository on a temporary directory with zoo models put
// into it, and the MNIST validation set.
type zoo struct {
	repo  *repository.Repository
	mnist *validation.Set
	pix   []byte // every MNIST image as FP32 0–255
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
	return &zoo{repo: repo, mnist: set, pix: set.FP32(1)}
}

// model returns a zoo model's bytes, stored in the repository.
func (z *zoo) model(t testing.TB, name string) []byte {
	t.Helper()
	data := zootest.Model(t, name)
	if _, err := z.repo.Put(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	return data
}

// variant builds a one-thread CPU variant of a zoo model and the
// architecture it belongs to (inputs are 0–255 pixels; scale maps them to
// what the model was trained on).
func (z *zoo) variant(t testing.TB, name string, maxBatch int, scale float64) (catalog.Variant, catalog.Architecture) {
	t.Helper()
	data := z.model(t, name)
	p, ok := zooProfiles[name]
	if !ok {
		t.Fatalf("no test profile for %s", name)
	}
	v := catalog.Variant{
		Name:         catalog.VariantName(name, "fp32", executor.OptAll, 1, maxBatch, executor.ProviderCPU),
		Architecture: name, Precision: "fp32", OptLevel: executor.OptAll, Provider: executor.ProviderCPU,
		Hardware: "cpu", Threads: 1, MaxBatch: maxBatch,
		FileDigest: repository.Digest(data), FileBytes: int64(len(data)),
		Profile: p,
	}
	io, err := executor.Inspect(data)
	if err != nil {
		t.Fatal(err)
	}
	return v, catalog.Architecture{Name: name, Task: "classification", Dataset: "mnist", Contract: io, InputScale: scale, DynamicBatch: true}
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

func newWorker(t testing.TB, z *zoo, mutate func(*Config)) *Worker {
	t.Helper()
	cfg := Config{ID: "w1", Hardware: catalog.LocalCPU(), MemoryBytes: 1 << 30}
	if mutate != nil {
		mutate(&cfg)
	}
	w, err := New(cfg, z.repo)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// run starts w.Run and stops it at the end of the test, checking that it
// returned cleanly. The returned function stops it earlier.
func run(t testing.TB, w *Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	// Run marks the worker running from its own goroutine: a test that
	// reads the state at once could see it not running yet.
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

func load(t testing.TB, w *Worker, v catalog.Variant, a catalog.Architecture) string {
	t.Helper()
	id, err := w.Load(context.Background(), v, a)
	if err != nil {
		t.Fatal(err)
	}
	return id
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

func replicaStats(t testing.TB, w *Worker, id string) Stats {
	t.Helper()
	info, err := w.Replica(id)
	if err != nil {
		t.Fatal(err)
	}
	return info.Stats
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

func isOverloaded(err error) bool { return errors.Is(err, ErrOverloaded) }

// floats decodes little-endian FP32 bytes.
func floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
