package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/validation"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc"
)

func TestMain(m *testing.M) {
	if err := executor.Init(); err != nil {
		panic("ONNX Runtime: " + err.Error() + " (run `make ort`)")
	}
	goleak.VerifyTestMain(m)
}

// rig is a controller over a real bolt store, a real repository and a real
// worker with two zoo architectures registered by hand.
type rig struct {
	c     *Controller
	set   *validation.Set
	pix   []byte
	archs map[string]catalog.Architecture
}

// profiles are generous, hand-written profiles of the zoo models on this
// machine (the registrar measures real ones; here the policy only needs a
// consistent picture: mlp-s fast and less accurate, cnn-m slower and accurate).
var profiles = map[string]struct {
	acc float64
	p   catalog.Profile
}{
	"mnist-mlp-s": {91.3, catalog.Profile{LoadMs: 5, PeakMemoryBytes: 8 << 20, ThroughputQPS: 200000,
		LatencyMs: map[int]catalog.Latency{1: {P50: 0.01, P99: 0.05}, 8: {P50: 0.03, P99: 0.1}}}},
	"mnist-cnn-m": {98.7, catalog.Profile{LoadMs: 10, PeakMemoryBytes: 16 << 20, ThroughputQPS: 30000,
		LatencyMs: map[int]catalog.Latency{1: {P50: 0.08, P99: 0.4}, 8: {P50: 0.3, P99: 1}}}},
}

// seedStore is a real bolt store and repository with the two zoo
// architectures of profiles registered by hand, on class LocalCPU.
func seedStore(t testing.TB) (metadata.Store, *repository.Repository, map[string]catalog.Architecture) {
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
	hw := catalog.LocalCPU()
	archs := map[string]catalog.Architecture{}
	for name, pr := range profiles {
		data := zootest.Model(t, name)
		d, err := repo.Put(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		io, err := executor.Inspect(data)
		if err != nil {
			t.Fatal(err)
		}
		a := catalog.Architecture{Name: name, Task: "classification", Dataset: "mnist", State: catalog.StatePending,
			ModelDigest: d, ModelBytes: int64(len(data)), Contract: io, InputScale: 1.0 / 255,
			DynamicBatch: true, Accuracy: pr.acc, AccuracySource: catalog.AccuracyMeasured}
		if err := store.BeginRegistration(ctx, a, "controller-test", time.Hour); err != nil {
			t.Fatal(err)
		}
		var vs []catalog.Variant
		for _, mb := range []int{1, 8} {
			vs = append(vs, catalog.Variant{Name: catalog.VariantName(name, "fp32", "all", 1, mb, "cpu"), Architecture: name,
				Precision: "fp32", OptLevel: "all", Provider: "cpu", Hardware: hw.Name, Threads: 1, MaxBatch: mb,
				FileDigest: d, FileBytes: int64(len(data)), Accuracy: pr.acc, AccuracySource: catalog.AccuracyMeasured, Profile: pr.p})
		}
		a.State = catalog.StateReady
		uc := catalog.UseCaseOf(a)
		if err := store.CommitRegistration(ctx, a, "controller-test", uc, vs); err != nil {
			t.Fatal(err)
		}
		archs[name] = a
	}
	return store, repo, archs
}

func newRig(t testing.TB) *rig { return newRigWith(t, nil) }

// newRigWith is newRig with edit applied to the controller before it runs.
func newRigWith(t testing.TB, edit func(*Controller)) *rig {
	t.Helper()
	ctx := context.Background()
	store, repo, archs := seedStore(t)
	hw := catalog.LocalCPU()
	r := &rig{archs: archs}
	wk, err := worker.New(worker.Config{ID: "w1", Hardware: hw, MemoryBytes: 1 << 30}, repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Classes = []catalog.HardwareClass{hw}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(cfg, store, []Worker{workerrpc.Local{Worker: wk}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(c)
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
	r.set = zootest.Validation(t, "mnist")
	r.pix = r.set.FP32(1)
	r.c = c
	return r
}

func (r *rig) request(model string, from, n int, req inference.Requirements) *inference.InferRequest {
	return &inference.InferRequest{Model: model, Requirements: req, Inputs: []inference.Tensor{{
		Name: "input", Datatype: "FP32", Shape: []int64{int64(n), 1, 28, 28}, Data: r.pix[from*784*4 : (from+n)*784*4]}}}
}

func argmax(t *testing.T, out inference.Tensor) []int {
	t.Helper()
	var res []int
	classes := int(out.Shape[1])
	for i := 0; i < int(out.Shape[0]); i++ {
		best := 0
		for c := 1; c < classes; c++ {
			if le32(out.Data, i*classes+c) > le32(out.Data, i*classes+best) {
				best = c
			}
		}
		res = append(res, best)
	}
	return res
}

func TestInferThreeWaysAndColdStart(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	cases := []struct {
		name, model string
		req         inference.Requirements
		wantArch    string
	}{
		{"variant", "mnist-cnn-m.fp32.all.t1.b8.cpu", inference.Requirements{}, "mnist-cnn-m"},
		{"architecture", "mnist-mlp-s", inference.Requirements{LatencyMs: 50}, "mnist-mlp-s"},
		{"use case, slash", "classification/mnist", inference.Requirements{LatencyMs: 50, MinAccuracy: 98}, "mnist-cnn-m"},
		{"use case, dot", "classification.mnist", inference.Requirements{LatencyMs: 50}, "mnist-mlp-s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := r.c.Infer(ctx, r.request(tc.model, 0, 4, tc.req))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Parameters["architecture"] != tc.wantArch {
				t.Fatalf("served by %v, want architecture %s", resp.Parameters["variant"], tc.wantArch)
			}
			got := argmax(t, resp.Outputs[0])
			correct := 0
			for i, g := range got {
				if g == r.set.Labels[i] {
					correct++
				}
			}
			if len(got) != 4 || correct < 3 {
				t.Fatalf("classes %v, labels %v", got, r.set.Labels[:4])
			}
		})
	}
	// The first query of each architecture loaded it (load-and-serve); the
	// log says so, newest first.
	ds := r.c.Decisions()
	if len(ds) != 4 || ds[3].Action != "load-and-serve" || ds[3].Variant == "" || ds[3].DecisionNs <= 0 {
		t.Fatalf("decision log: %+v", ds)
	}
	// A repeat is served by the loaded replica.
	resp, err := r.c.Infer(ctx, r.request("mnist-mlp-s", 0, 1, inference.Requirements{LatencyMs: 50}))
	if err != nil || resp.Parameters["action"] != "serve" || resp.Parameters["met"] != true {
		t.Fatalf("warm query: %v, %v", resp.Parameters, err)
	}
}

func TestInferRejects(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	good := r.request("mnist-mlp-s", 0, 1, inference.Requirements{})
	mutate := func(f func(*inference.InferRequest)) *inference.InferRequest {
		q := *good
		q.Inputs = append([]inference.Tensor(nil), good.Inputs...)
		f(&q)
		return &q
	}
	cases := []struct {
		name string
		req  *inference.InferRequest
		want error
		msg  string
	}{
		{"unknown name", mutate(func(q *inference.InferRequest) { q.Model = "nope" }), ErrUnknownModel, "no variant, architecture or use case"},
		{"unknown version", mutate(func(q *inference.InferRequest) { q.Version = "7" }), ErrUnknownModel, `no version "7"`},
		{"input twice", mutate(func(q *inference.InferRequest) { q.Inputs = append(q.Inputs, q.Inputs[0]) }), ErrBadInput, `input "input" is given twice`},
		{"unknown input", mutate(func(q *inference.InferRequest) { q.Inputs[0].Name = "pixels" }), ErrBadInput, `no input "pixels"; its inputs are "input"`},
		{"missing input", mutate(func(q *inference.InferRequest) { q.Inputs = nil }), ErrBadInput, `needs input "input"`},
		{"datatype", mutate(func(q *inference.InferRequest) { q.Inputs[0].Datatype = "INT32" }), ErrBadInput, `takes "input" FP32 [batch, 1, 28, 28]`},
		{"rank", mutate(func(q *inference.InferRequest) { q.Inputs[0].Shape = []int64{1, 784} }), ErrBadInput, "has 2 dimensions"},
		{"shape", mutate(func(q *inference.InferRequest) { q.Inputs[0].Shape = []int64{1, 1, 28, 27} }), ErrBadInput, "dimension 3 must be 28"},
		{"empty batch", mutate(func(q *inference.InferRequest) { q.Inputs[0].Shape = []int64{0, 1, 28, 28}; q.Inputs[0].Data = nil }), ErrBadInput, "empty batch"},
		{"bytes vs shape", mutate(func(q *inference.InferRequest) { q.Inputs[0].Data = q.Inputs[0].Data[:100] }), ErrBadInput, "needs 3136"},
		{"negative latency", mutate(func(q *inference.InferRequest) { q.Requirements.LatencyMs = -1 }), ErrBadRequirements, "latency_ms"},
		{"accuracy over 100", mutate(func(q *inference.InferRequest) { q.Requirements.MinAccuracy = 101 }), ErrBadRequirements, "min_accuracy"},
		{"batch over every max batch", r.request("mnist-mlp-s", 0, 9, inference.Requirements{}), ErrUnsatisfiable, "batch 9"},
		{"accuracy unreachable, strict", r.request("classification.mnist", 0, 1, inference.Requirements{MinAccuracy: 99.5, Strict: true}), ErrUnsatisfiable, "accuracy"},
		{"unknown output", mutate(func(q *inference.InferRequest) { q.Outputs = []string{"a"} }), ErrBadInput, `no output "a"; its outputs are "logits"`},
		{"output twice", mutate(func(q *inference.InferRequest) { q.Outputs = []string{"logits", "logits"} }), ErrBadInput, `output "logits" is requested twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.c.Infer(ctx, tc.req)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestModelMetadata(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	md, err := r.c.ModelMetadata(ctx, "classification.mnist")
	if err != nil || md.Platform != "infaas_model_less" || md.Inputs[0].Datatype != "FP32" || md.Outputs[0].Shape[1] != 10 {
		t.Fatalf("use case metadata: %+v, %v", md, err)
	}
	md, err = r.c.ModelMetadata(ctx, "mnist-cnn-m.fp32.all.t1.b1.cpu")
	if err != nil || md.Inputs[0].Name != r.archs["mnist-cnn-m"].Inputs[0].Name {
		t.Fatalf("variant metadata: %+v, %v", md, err)
	}
	if ok, err := r.c.ModelReady(ctx, "nope"); ok || !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("unknown model ready: %v, %v", ok, err)
	}
}

// BenchmarkInfer is the controller's whole query path in process (no
// network): resolve, validate, select, forward to a loaded replica, answer.
func BenchmarkInfer(b *testing.B) {
	r := newRig(b)
	ctx := context.Background()
	req := r.request("mnist-cnn-m.fp32.all.t1.b1.cpu", 0, 1, inference.Requirements{})
	if _, err := r.c.Infer(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.c.Infer(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentColdStart: many first queries at once share one load and
// all get answers, also those routed to the replica while it loads.
func TestConcurrentColdStart(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		go func() {
			_, err := r.c.Infer(ctx, r.request("mnist-cnn-m.fp32.all.t1.b1.cpu", i, 1, inference.Requirements{}))
			errs <- err
		}()
	}
	for i := 0; i < 16; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	loads := 0
	for _, d := range r.c.Decisions() {
		if d.Action == "load-and-serve" {
			loads++
		}
	}
	var replicas int
	for _, w := range r.c.workersNow() {
		replicas += len(w.State().Replicas)
	}
	if replicas != 1 {
		t.Fatalf("%d replicas after 16 concurrent first queries (%d load-and-serve decisions); want one shared load", replicas, loads)
	}
}

// TestStrictNeverLate: a strict request whose answer comes after its
// target is refused as overloaded (and counted), never answered late; a
// request that is not strict gets the late answer with met=false.
func TestStrictNeverLate(t *testing.T) {
	var slow atomic.Bool
	var skew atomic.Int64
	r := newRigWith(t, func(c *Controller) {
		c.now = func() time.Time {
			if slow.Load() { // every reading of the clock is 60 ms after the last
				return time.Now().Add(time.Duration(skew.Add(int64(60 * time.Millisecond))))
			}
			return time.Now().Add(time.Duration(skew.Load()))
		}
	})
	ctx := context.Background()
	warm := r.request("mnist-mlp-s", 0, 1, inference.Requirements{LatencyMs: 50})
	if _, err := r.c.Infer(ctx, warm); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	_, err := r.c.Infer(ctx, r.request("mnist-mlp-s", 0, 1, inference.Requirements{LatencyMs: 50, Strict: true}))
	if !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "after the strict 50 ms target") || failureReason(err) != "strict_late" {
		t.Fatalf("late strict request: %v", err)
	}
	resp, err := r.c.Infer(ctx, r.request("mnist-mlp-s", 0, 1, inference.Requirements{LatencyMs: 50}))
	if err != nil || resp.Parameters["met"] != false {
		t.Fatalf("late best-effort request: %v, %v", resp, err)
	}
}
