package controller

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc"
)

// otherClass is a second CPU class; the variant of memoryRig is profiled
// on it with a larger peak than on its reference class, LocalCPU.
var otherClass = catalog.HardwareClass{Name: "cpu-other", Provider: "cpu", Cores: 2, MemoryBytes: 1 << 30, PricePerHour: 0.1}

const (
	memArch    = "mnist-mlp-s"
	refPeak    = 8 << 20
	otherPeak  = 24 << 20
	memVariant = "mnist-mlp-s.fp32.all.t1.b8.cpu"
)

// memoryRig is a controller with one worker of otherClass holding exactly
// capacity bytes, and one variant, memVariant, registered on LocalCPU with
// a profile on otherClass too.
type memoryRig struct {
	c       *Controller
	w       *worker.Worker
	variant catalog.Variant
	arch    catalog.Architecture
	pix     []byte
}

func newMemoryRig(t *testing.T, capacity func(v catalog.Variant) int64) *memoryRig {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	repo, err := repository.Open(ctx, filepath.Join(dir, "models"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := metadata.OpenBolt(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	data := zootest.Model(t, memArch)
	d, err := repo.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	tio, err := executor.Inspect(data)
	if err != nil {
		t.Fatal(err)
	}
	a := catalog.Architecture{Name: memArch, Task: "classification", Dataset: "mnist", State: catalog.StatePending,
		ModelDigest: d, ModelBytes: int64(len(data)), Contract: tio, InputScale: 1.0 / 255,
		DynamicBatch: true, Accuracy: 91.3, AccuracySource: catalog.AccuracyMeasured}
	lat := map[int]catalog.Latency{1: {P50: 0.01, P99: 0.05}, 8: {P50: 0.03, P99: 0.1}}
	v := catalog.Variant{Name: memVariant, Architecture: memArch, Precision: "fp32", OptLevel: "all", Provider: "cpu",
		Hardware: catalog.LocalCPU().Name, Threads: 1, MaxBatch: 8, FileDigest: d, FileBytes: int64(len(data)),
		Accuracy: 91.3, AccuracySource: catalog.AccuracyMeasured,
		Profile:  catalog.Profile{LoadMs: 5, PeakMemoryBytes: refPeak, ThroughputQPS: 200000, LatencyMs: lat},
		Profiles: map[string]catalog.Profile{otherClass.Name: {LoadMs: 5, PeakMemoryBytes: otherPeak, ThroughputQPS: 200000, LatencyMs: lat}}}
	if err := store.BeginRegistration(ctx, a, "memory-test", time.Hour); err != nil {
		t.Fatal(err)
	}
	a.State = catalog.StateReady
	uc := catalog.UseCaseOf(a)
	if err := store.CommitRegistration(ctx, a, "memory-test", uc, []catalog.Variant{v}); err != nil {
		t.Fatal(err)
	}

	wk, err := worker.New(worker.Config{ID: "w1", Hardware: otherClass, MemoryBytes: capacity(v)}, repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Classes = []catalog.HardwareClass{catalog.LocalCPU(), otherClass}
	c, err := New(cfg, store, []Worker{workerrpc.Local{Worker: wk}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = wk.Run(runCtx); done <- struct{}{} }()
	go func() { _ = c.Run(runCtx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		store.Close()
		repo.Close()
	})
	for !c.Ready(ctx) {
		time.Sleep(time.Millisecond)
	}
	return &memoryRig{c: c, w: wk, variant: v, arch: a, pix: zootest.Validation(t, "mnist").FP32(1)}
}

func (r *memoryRig) infer(ctx context.Context) (*inference.InferResponse, error) {
	return r.c.Infer(ctx, &inference.InferRequest{Model: memVariant, Inputs: []inference.Tensor{{
		Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}, Data: r.pix[:784*4]}}})
}

// TestMemoryNeedAgrees: selection, the controller and the worker's ledger
// count a load's memory the same way — catalog's MemoryNeed of the variant
// on the worker's class — so selection never places a load the worker
// refuses, and never refuses one the worker would take.
func TestMemoryNeedAgrees(t *testing.T) {
	ctx := context.Background()
	need := func(v catalog.Variant) int64 { return v.MemoryNeedOn(otherClass.Name) }

	t.Run("one byte short: selection refuses to place it", func(t *testing.T) {
		r := newMemoryRig(t, func(v catalog.Variant) int64 { return need(v) - 1 })
		if _, err := r.infer(ctx); err == nil {
			t.Fatalf("served with %d bytes free, one short of the need %d", need(r.variant)-1, need(r.variant))
		}
		if st := r.w.State(); len(st.Replicas) != 0 || st.MemoryReserved != 0 {
			t.Fatalf("the worker was asked to load: %d replicas, %d bytes reserved", len(st.Replicas), st.MemoryReserved)
		}
		if ds := r.c.Decisions(); len(ds) != 1 || ds[0].Load != "" {
			t.Fatalf("selection chose a load the worker cannot take: %+v", ds)
		}
	})

	t.Run("exactly the need: placed, and the worker reserves it", func(t *testing.T) {
		r := newMemoryRig(t, need)
		want := catalog.MemoryNeed(catalog.Profile{PeakMemoryBytes: otherPeak}, r.variant.FileBytes)
		if need(r.variant) != want {
			t.Fatalf("MemoryNeedOn(%s) = %d, want %d (the class's own peak plus the file)", otherClass.Name, need(r.variant), want)
		}
		resp, err := r.infer(ctx)
		if err != nil {
			t.Fatalf("refused with exactly the need free: %v", err)
		}
		if resp.Parameters["action"] != "load-and-serve" {
			t.Fatalf("action %v, want load-and-serve", resp.Parameters["action"])
		}
		if st := r.w.State(); len(st.Replicas) != 1 || st.MemoryReserved != want {
			t.Fatalf("worker: %d replicas, %d bytes reserved; want 1 and %d", len(st.Replicas), st.MemoryReserved, want)
		}
	})

	// The autoscaler hands startLoad the variant as registered (reference
	// profile); the load still books, and the worker reserves, the need on
	// the worker's class.
	t.Run("a load of the reference variant books the need on the worker's class", func(t *testing.T) {
		r := newMemoryRig(t, need)
		l := r.c.startLoad(r.variant, r.arch, r.c.worker("w1"), "test")
		if l.reserve != need(r.variant) {
			t.Errorf("load books %d bytes, want %d", l.reserve, need(r.variant))
		}
		if _, err := l.wait(ctx); err != nil {
			t.Fatal(err)
		}
		if st := r.w.State(); st.MemoryReserved != l.reserve {
			t.Errorf("worker reserved %d bytes, the controller booked %d", st.MemoryReserved, l.reserve)
		}
	})
}
