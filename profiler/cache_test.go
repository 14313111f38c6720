package profiler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/internal/zootest"
)

// TestProfileCache: a profile job measured once is answered from the
// cache the second time, identically; a fresh job measures again and
// replaces the entry; another graph, other inputs or another budget is
// another key; an unreadable entry is measured again; failures are not
// kept.
func TestProfileCache(t *testing.T) {
	dir := t.TempDir()
	p := newProfiler(t)
	p.cfg.CacheDir = dir
	wd, err := NewWorkdir()
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	set := zootest.Validation(t, "mnist")
	inputs := SampleInputs{N: 32, Batched: true, Shapes: [][]int64{{1, 28, 28}}, Data: [][]byte{set.FP32(1.0 / 255)[:32*784*4]}}
	jobFor := func(model string) Job {
		b, err := os.ReadFile(zootest.Path(t, "models/"+model+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		// A copy under a new path: the key is the content, not the path.
		path, err := wd.Write(fmt.Sprintf("%s-%d.onnx", model, time.Now().UnixNano()), b)
		if err != nil {
			t.Fatal(err)
		}
		job, err := inputs.Write(wd, Job{Kind: KindProfile, ModelPath: path, Options: executor.Options{Threads: 1, OptLevel: executor.OptBasic}, Batches: []int{1, 4}})
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	run := func(job Job) Result {
		t.Helper()
		res, err := p.Run(context.Background(), job)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	entries := func() int {
		ents, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		return len(ents)
	}

	first := run(jobFor("mnist-mlp-s"))
	if first.Reused || first.MeasuredAt.IsZero() || entries() != 1 {
		t.Fatalf("first run: reused %v, measured at %s, %d entries; want measured now and stored", first.Reused, first.MeasuredAt, entries())
	}
	again := run(jobFor("mnist-mlp-s"))
	if !again.Reused || !again.MeasuredAt.Equal(first.MeasuredAt) || !reflect.DeepEqual(again.Latency, first.Latency) ||
		!reflect.DeepEqual(again.PeakMemory, first.PeakMemory) || again.LoadMs != first.LoadMs {
		t.Fatalf("same job again: reused %v, latency %v (first %v)", again.Reused, again.Latency, first.Latency)
	}

	fresh := jobFor("mnist-mlp-s")
	fresh.Fresh = true
	measured := run(fresh)
	if measured.Reused || !measured.MeasuredAt.After(first.MeasuredAt) || entries() != 1 {
		t.Fatalf("fresh job: reused %v at %s, %d entries; want a new measurement replacing the entry", measured.Reused, measured.MeasuredAt, entries())
	}
	if r := run(jobFor("mnist-mlp-s")); !r.Reused || !r.MeasuredAt.Equal(measured.MeasuredAt) {
		t.Fatalf("after a fresh job the cache answers with its result: reused %v at %s, want %s", r.Reused, r.MeasuredAt, measured.MeasuredAt)
	}

	// Another graph; another budget; other threads: each its own key.
	if r := run(jobFor("mnist-mlp-m")); r.Reused {
		t.Error("another graph was answered from the cache")
	}
	longer := newProfiler(t)
	longer.cfg.CacheDir, longer.cfg.PerBatch = dir, 2*p.cfg.PerBatch
	if r, err := longer.Run(context.Background(), jobFor("mnist-mlp-s")); err != nil || r.Reused {
		t.Errorf("another budget: reused %v, %v", r.Reused, err)
	}
	two := jobFor("mnist-mlp-s")
	two.Options.Threads = 2
	if r := run(two); r.Reused {
		t.Error("another thread count was answered from the cache")
	}
	if n := entries(); n != 4 {
		t.Errorf("%d entries, want 4 (two graphs, a second budget, a second thread count)", n)
	}

	// An unreadable entry is measured again and rewritten.
	key, err := cacheKey(p.withBudget(jobFor("mnist-mlp-s")))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, key+".json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(jobFor("mnist-mlp-s")); r.Reused {
		t.Error("a corrupt entry was reused")
	}
	if r := run(jobFor("mnist-mlp-s")); !r.Reused {
		t.Error("the corrupt entry was not rewritten")
	}

	// A failed job is not kept.
	bad, _ := wd.Write("bad.onnx", []byte("garbage"))
	badJob := jobFor("mnist-mlp-s")
	badJob.ModelPath = bad
	n := entries()
	if _, err := p.Run(context.Background(), badJob); err == nil {
		t.Fatal("garbage profiled")
	}
	if entries() != n {
		t.Error("a failed job left an entry")
	}
}

// TestTrimCache: past the bound, the oldest entries go.
func TestTrimCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i := range 5 {
		name := filepath.Join(dir, fmt.Sprintf("k%d.json", i))
		if err := os.WriteFile(name, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		at := now.Add(time.Duration(i-5) * time.Minute)
		if err := os.Chtimes(name, at, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := trimCache(dir, 3); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	want := []string{filepath.Join(dir, "k2.json"), filepath.Join(dir, "k3.json"), filepath.Join(dir, "k4.json")}
	if !reflect.DeepEqual(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
