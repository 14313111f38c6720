package profiler

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/internal/zootest"
)

func TestMain(m *testing.M) {
	MaybeRunChild()
	os.Exit(m.Run())
}

func newProfiler(t *testing.T) *Profiler {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.PerBatch = 20 * time.Millisecond
	return New(exe, cfg)
}

// profileMNIST profiles a zoo MNIST model at batches with opt, on the
// validation images (labels too when withLabels).
func profileMNIST(t *testing.T, model, opt string, withLabels bool, batches ...int) Result {
	t.Helper()
	set := zootest.Validation(t, "mnist")
	wd, err := NewWorkdir()
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	job := Job{Kind: KindProfile, ModelPath: zootest.Path(t, "models/"+model+".onnx"),
		Options: executor.Options{Threads: 1, OptLevel: opt}, Batches: batches}
	if withLabels {
		job.Labels = set.Labels
	}
	job, err = SampleInputs{N: set.N, Batched: true, Shapes: [][]int64{{1, 28, 28}}, Data: [][]byte{set.FP32(1.0 / 255)}}.Write(wd, job)
	if err != nil {
		t.Fatal(err)
	}
	res, err := newProfiler(t).Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestProfileMeasuresEverything(t *testing.T) {
	res := profileMNIST(t, "mnist-mlp-m", executor.OptAll, true, 1, 8)
	if res.LoadMs <= 0 || len(res.Latency) != 2 || res.PeakMemory[8] <= 0 || res.Accuracy == nil {
		t.Fatalf("incomplete result: %+v", res)
	}
	if *res.Accuracy < 90 || *res.Accuracy > 100 {
		t.Fatalf("accuracy %.2f%% on MNIST for an MLP", *res.Accuracy)
	}
	for b, l := range res.Latency {
		if l.P50 <= 0 || l.P99 < l.P50 || l.Samples < DefaultConfig().MinIters {
			t.Errorf("batch %d: %+v", b, l)
		}
	}
	if res.PeakMemory[8] < res.PeakMemory[1] {
		t.Errorf("peak memory fell from %d at batch 1 to %d at batch 8; it is a high-water mark", res.PeakMemory[1], res.PeakMemory[8])
	}
}

func TestChildErrorsComeBackAsErrors(t *testing.T) {
	p := newProfiler(t)
	wd, _ := NewWorkdir()
	defer wd.Close()
	bad, _ := wd.Write("bad.onnx", []byte("garbage"))
	_, err := p.Run(context.Background(), Job{Kind: KindInspect, ModelPath: bad})
	if err == nil || !strings.Contains(err.Error(), "ONNX Runtime rejected the model") {
		t.Fatalf("garbage model: %v", err)
	}
	_, err = p.Run(context.Background(), Job{Kind: "nonsense", ModelPath: bad})
	if err == nil || !strings.Contains(err.Error(), "unknown job kind") {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if l := Summarise(v); l.P50 != 5 || l.P99 != 10 || l.Samples != 10 || Summarise(nil).P50 != 0 {
		t.Fatalf("summary %+v", l)
	}
}

// TestPeakMemoryIsTheModels: a profile's memory is what the model takes,
// not the child's Go heap. Thousands of timed runs of a small MLP left
// 3–6 MiB of garbage between batch 1 and batch 32, as much as the model's
// own need, and that growth — by however many runs the budget allowed —
// decided which variants a registration kept. The model's activations at
// batch 32 are under 1 MiB (32 × 784 floats in, far less inside).
func TestPeakMemoryIsTheModels(t *testing.T) {
	batches := []int{1, 4, 8, 16, 32}
	res := profileMNIST(t, "mnist-mlp-s", executor.OptExtended, false, batches...)
	t.Logf("peak memory by batch: %v", res.PeakMemory)
	prev := int64(0)
	for _, b := range batches {
		if res.PeakMemory[b] < prev {
			t.Errorf("peak memory fell to %d at batch %d from %d: it is a high-water mark", res.PeakMemory[b], b, prev)
		}
		prev = res.PeakMemory[b]
	}
	if res.PeakMemory[1] <= 0 {
		t.Fatalf("no memory measured at batch 1: %v", res.PeakMemory)
	}
	if grew := res.PeakMemory[32] - res.PeakMemory[1]; grew > 2<<20 {
		t.Errorf("peak memory grew by %.1f MiB from batch 1 to 32 for a model whose activations take under 1 MiB: the child's own heap is counted",
			float64(grew)/(1<<20))
	}
}
