package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/repository"
)

// Unload while requests are queued: they complete, new ones are refused,
// and the session closes and memory returns only afterwards.
func TestUnloadWaitsForInflightRequests(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	w := newWorker(t, z, nil)
	id := load(t, w, v, arch)
	w.mu.Lock()
	r := w.replicas[id]
	w.mu.Unlock()

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if _, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(i, 1)), Batch: 1}); err != nil {
				t.Errorf("in-flight request %d: %v", i, err)
			}
		})
	}
	waitFor(t, "6 queued", func() bool { return replicaStats(t, w, id).Queued == 6 })
	if err := w.Unload(id); err != nil {
		t.Fatal(err)
	}
	info, err := w.Replica(id)
	if err != nil || info.State != StateDraining {
		t.Fatalf("after Unload: %+v, %v; want draining", info.State, err)
	}
	if w.State().MemoryReserved == 0 {
		t.Fatal("memory released while requests are queued")
	}
	if _, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); !errors.Is(err, ErrDraining) {
		t.Fatalf("new request on a draining replica: %v, want ErrDraining", err)
	}
	select {
	case <-r.done:
		t.Fatal("replica closed with requests queued")
	default:
	}
	run(t, w)
	wg.Wait()
	<-r.done
	st := w.State()
	if len(st.Replicas) != 0 || st.MemoryReserved != 0 {
		t.Errorf("after draining: %d replicas, %d bytes reserved", len(st.Replicas), st.MemoryReserved)
	}
	if err := w.Unload(id); !errors.Is(err, ErrUnknownReplica) {
		t.Errorf("second Unload: %v", err)
	}
}

// Unload under live traffic: every request either completes or is told
// the replica is draining.
func TestUnloadUnderTraffic(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-l", 8, 1.0/255)
	w := newWorker(t, z, nil)
	run(t, w)
	id := load(t, w, v, arch)
	w.mu.Lock()
	r := w.replicas[id]
	w.mu.Unlock()

	var wg sync.WaitGroup
	var mu sync.Mutex
	served := 0
	for c := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw((c+i)%1000, 1)), Batch: 1})
				switch {
				case err == nil:
					mu.Lock()
					served++
					mu.Unlock()
				case errors.Is(err, ErrDraining), errors.Is(err, ErrUnknownReplica):
					return
				case isOverloaded(err):
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	waitFor(t, "traffic", func() bool { mu.Lock(); defer mu.Unlock(); return served > 100 })
	if err := w.Unload(id); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	<-r.done
	if st := w.State(); st.MemoryReserved != 0 {
		t.Errorf("%d bytes still reserved", st.MemoryReserved)
	}
}

func TestShutdownFailsQueuedRequests(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 64, 1.0/255)
	// A long max delay with far deadlines keeps requests waiting for company.
	w := newWorker(t, z, func(c *Config) { c.MaxQueueDelay = time.Hour })
	stop := run(t, w)
	id := load(t, w, v, arch)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(i, 1)), Batch: 1, Deadline: time.Now().Add(time.Hour)})
			errs <- err
		}()
	}
	waitFor(t, "3 queued", func() bool { return replicaStats(t, w, id).Queued == 3 })
	stop()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrStopped) {
			t.Errorf("queued request at shutdown: %v, want ErrStopped", err)
		}
	}
	st := w.State()
	if len(st.Replicas) != 0 || st.MemoryReserved != 0 || st.Running {
		t.Errorf("after shutdown: %+v", st)
	}
	if _, err := w.Load(context.Background(), v, arch); !errors.Is(err, ErrStopped) {
		t.Errorf("Load after shutdown: %v", err)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestLoadRefusesOverCommit(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-cnn-s", 8, 1.0/255)
	need := catalog.MemoryNeed(v.Profile, v.FileBytes)
	w := newWorker(t, z, func(c *Config) { c.MemoryBytes = 3*need + need/2 })
	run(t, w)
	ctx := context.Background()

	// Eight concurrent loads of the same variant: exactly three fit.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	for range 8 {
		wg.Go(func() {
			id, err := w.Load(ctx, v, arch)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ids = append(ids, id)
			case !errors.Is(err, ErrNoMemory):
				t.Error(err)
			}
			if st := w.State(); st.MemoryReserved > st.MemoryCapacity {
				t.Errorf("reserved %d over capacity %d", st.MemoryReserved, st.MemoryCapacity)
			}
		})
	}
	wg.Wait()
	if len(ids) != 3 {
		t.Fatalf("%d loads succeeded, want 3", len(ids))
	}
	_, err := w.Load(ctx, v, arch)
	if !errors.Is(err, ErrNoMemory) {
		t.Fatalf("4th load: %v, want ErrNoMemory", err)
	}
	t.Logf("refused: %v", err)
	for _, id := range ids {
		if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Unload(ids[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "memory to be released", func() bool { return w.State().MemoryReserved == 2*need })
	if _, err := w.Load(ctx, v, arch); err != nil {
		t.Fatalf("load after unload: %v", err)
	}
}

// Property: a random mix of loads, unloads and requests never reserves
// more than the capacity, and the ledger matches the replicas.
func TestMemoryNeverOverCommits(t *testing.T) {
	z := newZoo(t)
	small, arch := z.variant(t, "mnist-cnn-s", 8, 1.0/255)
	big, bigArch := z.variant(t, "mnist-mlp-m", 8, 1.0/255)
	big.Profile.PeakMemoryBytes = 3 * small.Profile.PeakMemoryBytes
	w := newWorker(t, z, func(c *Config) { c.MemoryBytes = 20 << 20 })
	run(t, w)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var live []string
	for step := range 60 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(live))
			if err := w.Unload(live[i]); err != nil {
				t.Fatal(err)
			}
			live = append(live[:i], live[i+1:]...)
		} else {
			v, a := small, arch
			if rng.IntN(2) == 0 {
				v, a = big, bigArch
			}
			id, err := w.Load(ctx, v, a)
			switch {
			case err == nil:
				live = append(live, id)
				if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(step, 1)), Batch: 1}); err != nil {
					t.Fatal(err)
				}
			case !errors.Is(err, ErrNoMemory):
				t.Fatal(err)
			}
		}
		st := w.State()
		if st.MemoryReserved > st.MemoryCapacity {
			t.Fatalf("step %d: reserved %d over capacity %d", step, st.MemoryReserved, st.MemoryCapacity)
		}
		var sum int64
		for _, r := range st.Replicas {
			sum += r.ReservedBytes
		}
		if sum != st.MemoryReserved {
			t.Fatalf("step %d: replicas hold %d bytes, ledger says %d", step, sum, st.MemoryReserved)
		}
	}
}

func TestLoadFailures(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-cnn-s", 8, 1.0/255)
	w := newWorker(t, z, nil)
	run(t, w)
	ctx := context.Background()

	missing := v
	missing.FileDigest = repository.Digest([]byte("not stored"))
	if _, err := w.Load(ctx, missing, arch); !errors.Is(err, repository.ErrNotFound) {
		t.Errorf("missing graph: %v, want repository.ErrNotFound", err)
	}
	cuda := v
	cuda.Provider = executor.ProviderCUDA
	if _, err := w.Load(ctx, cuda, arch); !errors.Is(err, ErrIncompatible) {
		t.Errorf("cuda variant on a cpu worker: %v, want ErrIncompatible", err)
	}
	greedy := v
	greedy.Threads = w.Config().Hardware.Cores + 1
	if _, err := w.Load(ctx, greedy, arch); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "cores") {
		t.Errorf("more threads than the worker's cores: %v, want ErrIncompatible", err)
	}
	other := arch
	other.Name = "someone-else"
	if _, err := w.Load(ctx, v, other); !errors.Is(err, ErrIncompatible) {
		t.Errorf("wrong architecture: %v, want ErrIncompatible", err)
	}
	if st := w.State(); st.MemoryReserved != 0 || len(st.Replicas) != 0 {
		t.Errorf("failed loads left %d bytes and %d replicas", st.MemoryReserved, len(st.Replicas))
	}
}

// gatedBlobs holds Get for one digest until the test opens the gate, so a
// load can be caught in flight.
type gatedBlobs struct {
	Blobs
	digest  string
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedBlobs) Get(ctx context.Context, d string) ([]byte, error) {
	if d == g.digest {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.Blobs.Get(ctx, d)
}

// A load in flight blocks no other replica; its own replica shows as
// loading, refuses requests, and an Unload meanwhile discards it.
func TestLoadDoesNotBlockServing(t *testing.T) {
	z := newZoo(t)
	serving, sArch := z.variant(t, "mnist-cnn-s", 4, 1.0/255)
	slow, slowArch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	blobs := &gatedBlobs{Blobs: z.repo, digest: slow.FileDigest, entered: make(chan struct{}), gate: make(chan struct{})}
	w, err := New(Config{ID: "w1", Hardware: catalog.LocalCPU(), MemoryBytes: 1 << 30}, blobs)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	ctx := context.Background()
	id := load(t, w, serving, sArch)

	for round, unload := range []bool{false, true} {
		type loaded struct {
			id  string
			err error
		}
		done := make(chan loaded, 1)
		go func() {
			id, err := w.Load(ctx, slow, slowArch)
			done <- loaded{id, err}
		}()
		<-blobs.entered
		var loadingID string
		for _, r := range w.Replicas() {
			if r.State == StateLoading {
				loadingID = r.ID
			}
		}
		if loadingID == "" {
			t.Fatalf("round %d: no replica shows as loading: %+v", round, w.Replicas())
		}
		if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); err != nil {
			t.Fatalf("round %d: serving while another replica loads: %v", round, err)
		}
		if _, err := w.Infer(ctx, loadingID, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); !errors.Is(err, ErrNotReady) {
			t.Fatalf("round %d: request to a loading replica: %v, want ErrNotReady", round, err)
		}
		if unload {
			if err := w.Unload(loadingID); err != nil {
				t.Fatal(err)
			}
		}
		blobs.gate <- struct{}{}
		res := <-done
		switch {
		case unload && !errors.Is(res.err, ErrDraining):
			t.Fatalf("load unloaded in flight: %v, want ErrDraining", res.err)
		case !unload && res.err != nil:
			t.Fatal(res.err)
		case !unload:
			if _, err := w.Infer(ctx, res.id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); err != nil {
				t.Fatal(err)
			}
			if err := w.Unload(res.id); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := catalog.MemoryNeed(serving.Profile, serving.FileBytes)
	waitFor(t, "only the serving replica's memory to stay reserved", func() bool { return w.State().MemoryReserved == want })
}

// State reports replicas with their variant, state, stats and health.
func TestState(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-cnn-s", 8, 1.0/255)
	w := newWorker(t, z, nil)
	run(t, w)
	a := load(t, w, v, arch)
	b := load(t, w, v, arch)
	for range health.WarmupBatches + 10 { // compute times count after the warm-up
		if _, err := w.Infer(context.Background(), a, Request{Inputs: pixels(z.raw(0, 2)), Batch: 2}); err != nil {
			t.Fatal(err)
		}
	}
	st := w.State()
	if st.ID != "w1" || !st.Running || len(st.Replicas) != 2 || st.MemoryReserved != 2*catalog.MemoryNeed(v.Profile, v.FileBytes) {
		t.Fatalf("state %+v", st)
	}
	for _, r := range st.Replicas {
		if r.Variant != v.Name || r.State != StateReady || r.MaxBatch != 8 || r.LoadedAt.IsZero() {
			t.Errorf("replica %+v", r)
		}
		if !r.Health.Healthy() {
			t.Errorf("replica %s flagged: %v", r.ID, r.Health.Reasons)
		}
	}
	ra, _ := w.Replica(a)
	rb, _ := w.Replica(b)
	if ra.Stats.Completed != health.WarmupBatches+10 || ra.Stats.AvgBatch != 2 || ra.Stats.QPS <= 0 || ra.Stats.LatencyP99 <= 0 || ra.Stats.ComputeP99 <= 0 {
		t.Errorf("stats of the busy replica: %+v", ra.Stats)
	}
	if rb.Stats.Completed != 0 {
		t.Errorf("stats of the idle replica: %+v", rb.Stats)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	z := newZoo(t)
	for name, cfg := range map[string]Config{
		"no id":        {MemoryBytes: 1},
		"no memory":    {ID: "w"},
		"bad window":   {ID: "w", MemoryBytes: 1, MonitorWindow: time.Second, MonitorBucket: 2 * time.Second},
		"bad latency":  {ID: "w", MemoryBytes: 1, Thresholds: Thresholds{Latency: 0.5, QPS: 1, Outstanding: 1, DrainBudget: time.Second}},
		"negative bnd": {ID: "w", MemoryBytes: 1, QueueBound: -1},
	} {
		if _, err := New(cfg, z.repo); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	w, err := New(Config{ID: "w", Hardware: catalog.HardwareClass{Name: "cpu-2", Provider: "cpu", MemoryBytes: 1 << 30}}, z.repo)
	if err != nil {
		t.Fatal(err)
	}
	if c := w.Config(); c.MemoryBytes != 1<<30 || c.Thresholds != CPUThresholds() || c.QueueBound != DefaultQueueBound {
		t.Errorf("defaults: %+v", c)
	}
}
