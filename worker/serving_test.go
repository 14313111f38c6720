package worker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
)

// The worker's answers must be what ONNX Runtime gives directly, with the
// architecture's input scale applied by the worker: one request of 64
// images, and 64 concurrent requests of one image each.
func TestInferMatchesDirectRun(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 64, 1.0/255)
	w := newWorker(t, z, nil)
	run(t, w)
	id := load(t, w, v, arch)

	const n = 64
	sess, err := executor.Load(z.model(t, "mnist-mlp-m"), executor.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	scaled := z.mnist.FP32(1.0 / 255)[:n*4*z.mnist.SampleSize]
	direct, err := sess.Run([]inference.Tensor{{Shape: []int64{n, 1, 28, 28}, Data: scaled}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := argmax(direct[0].Data, 10)

	check := func(t *testing.T, got []int) {
		correct := 0
		for i := range n {
			if got[i] != want[i] {
				t.Errorf("sample %d: worker says %d, direct run says %d", i, got[i], want[i])
			}
			if got[i] == z.mnist.Labels[i] {
				correct++
			}
		}
		if acc := float64(correct) / n; acc < 0.9 {
			t.Errorf("accuracy %.2f on the first %d images, want ≥ 0.90 (is the input scale applied?)", acc, n)
		}
	}

	t.Run("one request of 64", func(t *testing.T) {
		resp, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(0, n)), Batch: n})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outputs[0].Datatype != "FP32" || len(resp.Outputs[0].Shape) != 2 || resp.Outputs[0].Shape[0] != n || resp.Outputs[0].Shape[1] != 10 {
			t.Fatalf("output %s %v, want FP32 [%d 10]", resp.Outputs[0].Datatype, resp.Outputs[0].Shape, n)
		}
		if resp.BatchSize != n || resp.Variant != v.Name || resp.Replica != id {
			t.Errorf("response says batch %d of %s on %s", resp.BatchSize, resp.Variant, resp.Replica)
		}
		check(t, argmax(resp.Outputs[0].Data, 10))
	})

	t.Run("64 concurrent requests of 1", func(t *testing.T) {
		got := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				resp, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(i, 1)), Batch: 1, Deadline: time.Now().Add(5 * time.Second)})
				if err != nil {
					t.Error(err)
					return
				}
				if resp.Outputs[0].Shape[0] != 1 || len(resp.Outputs[0].Data) != 40 {
					t.Errorf("request %d: shape %v, %d bytes", i, resp.Outputs[0].Shape, len(resp.Outputs[0].Data))
				}
				got[i] = argmax(resp.Outputs[0].Data, 10)[0]
			})
		}
		wg.Wait()
		check(t, got)
	})
}

// mnist-8 has a fixed batch dimension of 1 and takes 0–255 pixels: the
// replica's max batch is capped at 1 whatever the variant says.
func TestFixedBatchModel(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-8", 8, 1)
	w := newWorker(t, z, nil)
	run(t, w)
	id := load(t, w, v, arch)
	info, err := w.Replica(id)
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxBatch != 1 {
		t.Fatalf("max batch %d, want 1 (the model's batch dimension is fixed)", info.MaxBatch)
	}
	if _, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(0, 2)), Batch: 2}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("batch 2 on a batch-1 model: %v, want ErrBadInput", err)
	}
	const n = 32
	correct := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(i, 1)), Batch: 1})
			if err != nil {
				t.Error(err)
				return
			}
			if resp.BatchSize != 1 {
				t.Errorf("executed batch %d on a fixed batch-1 model", resp.BatchSize)
			}
			mu.Lock()
			if argmax(resp.Outputs[0].Data, 10)[0] == z.mnist.Labels[i] {
				correct++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if correct < n*9/10 {
		t.Errorf("mnist-8 got %d of %d right", correct, n)
	}
}

func TestInferRejectsBadInput(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-cnn-s", 4, 1.0/255)
	w := newWorker(t, z, nil)
	run(t, w)
	id := load(t, w, v, arch)
	ctx := context.Background()
	for name, req := range map[string]Request{
		"batch 0":         {Inputs: nil, Batch: 0},
		"over max batch":  {Inputs: pixels(z.raw(0, 5)), Batch: 5},
		"short input":     {Inputs: pixels(z.raw(0, 1)[:100]), Batch: 1},
		"batch and bytes": {Inputs: pixels(z.raw(0, 2)), Batch: 1},
	} {
		if _, err := w.Infer(ctx, id, req); !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: %v, want ErrBadInput", name, err)
		}
	}
	if _, err := w.Infer(ctx, "nope#1", Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); !errors.Is(err, ErrUnknownReplica) {
		t.Errorf("unknown replica: %v", err)
	}
}

// Under concurrent load the batcher runs batches larger than one: requests
// with slack wait (up to the max queue delay) for others to join them.
// (Requests without a deadline batch only with what queued while the
// previous batch ran, which on a single-P runtime is nothing; the
// benchmark shows both.)
func TestBatchesFormUnderLoad(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-l", 16, 1.0/255)
	w := newWorker(t, z, nil)
	run(t, w)
	id := load(t, w, v, arch)

	const clients, each = 32, 20
	var mu sync.Mutex
	largest := 0
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				req := Request{Inputs: pixels(z.raw((c*each+i)%1000, 1)), Batch: 1, Deadline: time.Now().Add(time.Second)}
				resp, err := w.Infer(context.Background(), id, req)
				if err != nil {
					if !isOverloaded(err) {
						t.Error(err)
					}
					continue
				}
				if resp.BatchSize > v.MaxBatch {
					t.Errorf("executed batch %d exceeds max batch %d", resp.BatchSize, v.MaxBatch)
				}
				mu.Lock()
				largest = max(largest, resp.BatchSize)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s := replicaStats(t, w, id)
	t.Logf("%d requests in %d batches (avg %.1f, max %d), p50 %v p99 %v, compute p99 %v",
		s.Completed, s.Batches, s.AvgBatch, s.MaxBatch, s.LatencyP50, s.LatencyP99, s.ComputeP99)
	if largest <= 1 || s.AvgBatch <= 1 {
		t.Errorf("no batching under %d concurrent clients: largest batch %d, average %.2f", clients, largest, s.AvgBatch)
	}
}

// With slack to spare, the batcher holds requests back until the batch is
// full; a lone request waits for company no longer than the max queue
// delay; a request without slack runs at once.
func TestBatcherWaitsWhileSlackAllows(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	w := newWorker(t, z, func(c *Config) { c.MaxQueueDelay = 300 * time.Millisecond })
	run(t, w)
	id := load(t, w, v, arch)
	ctx := context.Background()

	t.Run("fills the batch", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				resp, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(i, 1)), Batch: 1, Deadline: deadline})
				if err != nil {
					t.Error(err)
					return
				}
				if resp.BatchSize != 4 {
					t.Errorf("request %d ran in a batch of %d, want 4 (slack allowed waiting)", i, resp.BatchSize)
				}
			})
		}
		wg.Wait()
	})
	t.Run("lone request waits at most the max delay", func(t *testing.T) {
		start := time.Now()
		resp, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: time.Now().Add(10 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.QueueTime < 300*time.Millisecond || time.Since(start) > 5*time.Second {
			t.Errorf("queued %v (returned after %v), want the 300ms max queue delay", resp.QueueTime, time.Since(start))
		}
	})
	t.Run("no slack runs at once", func(t *testing.T) {
		// p99 at batch 2 is ~0.11 ms in the profile: 20 ms leave no reason
		// to wait 300 ms, only until deadline − p99.
		resp, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: time.Now().Add(20 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.QueueTime > 200*time.Millisecond {
			t.Errorf("queued %v with 20 ms of slack", resp.QueueTime)
		}
	})
	t.Run("no deadline runs at once", func(t *testing.T) {
		resp, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1})
		if err != nil {
			t.Fatal(err)
		}
		if resp.QueueTime > 200*time.Millisecond {
			t.Errorf("queued %v without a deadline", resp.QueueTime)
		}
	})
}

// Requests queued before Run starts stay queued, which lets the tests fill
// a queue deterministically.
func TestAdmissionControl(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	v.Profile.ThroughputQPS = 1000 // 8 queued samples take 8 ms
	w := newWorker(t, z, func(c *Config) { c.QueueBound = 8 })
	id := load(t, w, v, arch)
	ctx := context.Background()

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(2*i, 2)), Batch: 2}); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "8 samples queued", func() bool { return replicaStats(t, w, id).Queued == 8 })

	start := time.Now()
	_, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1})
	if !isOverloaded(err) {
		t.Fatalf("9th sample into a queue bounded at 8: %v, want ErrOverloaded", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("refusal took %v; it must be immediate", time.Since(start))
	}
	t.Logf("refused: %v", err)

	// A bound of 8 refuses nothing more once Run drains the queue.
	run(t, w)
	wg.Wait()
	if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 4)), Batch: 4}); err != nil {
		t.Fatal(err)
	}
	s := replicaStats(t, w, id)
	if s.Refused != 1 || s.MaxQueued != 8 || s.Queued != 0 {
		t.Errorf("stats: refused %d, max queued %d, queued %d; want 1, 8, 0", s.Refused, s.MaxQueued, s.Queued)
	}
}

func TestAdmissionRefusesUnmeetableDeadline(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	v.Profile.ThroughputQPS = 1000 // 4 queued samples take 4 ms
	w := newWorker(t, z, func(c *Config) { c.QueueBound = 64 })
	id := load(t, w, v, arch)
	ctx := context.Background()

	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 4)), Batch: 4}); err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "4 samples queued", func() bool { return replicaStats(t, w, id).Queued == 4 })
	if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: time.Now().Add(2 * time.Millisecond)}); !isOverloaded(err) {
		t.Fatalf("deadline in 2 ms behind 4 ms of work: %v, want ErrOverloaded", err)
	} else {
		t.Logf("refused: %v", err)
	}
	if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: time.Now().Add(-time.Millisecond)}); !isOverloaded(err) {
		t.Fatalf("deadline already passed: %v, want ErrOverloaded", err)
	}
	wg.Go(func() {
		if _, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: time.Now().Add(time.Minute)}); err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "the admitted request to queue", func() bool { return replicaStats(t, w, id).Queued == 5 })
	run(t, w)
	wg.Wait()
}

// Flooding a small queue from many clients: every request is answered or
// refused, none waits unboundedly, and the queue never exceeds its bound.
func TestFloodIsBounded(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-l", 4, 1.0/255)
	w := newWorker(t, z, func(c *Config) { c.QueueBound = 4 })
	run(t, w)
	id := load(t, w, v, arch)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	served, refused := 0, 0
	var wg sync.WaitGroup
	for c := range 64 {
		wg.Go(func() {
			for i := range 20 {
				_, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw((c+i)%1000, 1)), Batch: 1})
				mu.Lock()
				switch {
				case err == nil:
					served++
				case isOverloaded(err):
					refused++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("requests waited until the test's timeout")
	}
	s := replicaStats(t, w, id)
	t.Logf("served %d, refused %d; max queued %d", served, refused, s.MaxQueued)
	if served+refused != 64*20 || s.MaxQueued > 4 {
		t.Errorf("served %d + refused %d of %d; max queued %d over the bound of 4", served, refused, 64*20, s.MaxQueued)
	}
}

func TestCancelledWhileQueuedIsDropped(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	w := newWorker(t, z, nil)
	id := load(t, w, v, arch)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := w.Infer(ctx, id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1})
		errc <- err
	}()
	waitFor(t, "the request to queue", func() bool { return replicaStats(t, w, id).Queued == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", err)
	}
	s := replicaStats(t, w, id)
	if s.Queued != 0 || s.Dropped != 1 {
		t.Fatalf("after cancel: queued %d, dropped %d; want 0, 1", s.Queued, s.Dropped)
	}
	run(t, w)
	if _, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); err != nil {
		t.Fatal(err)
	}
	if s := replicaStats(t, w, id); s.Batches != 1 || s.Completed != 1 {
		t.Errorf("the dropped request ran: %d batches, %d completed", s.Batches, s.Completed)
	}
}

// TestExpiredWhileQueuedIsShed: a request whose deadline passes while it
// waits in the queue is refused with ErrOverloaded (the client may retry
// elsewhere at once) and counted as refused — never run and answered late.
func TestExpiredWhileQueuedIsShed(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	w := newWorker(t, z, nil)
	id := load(t, w, v, arch)

	deadline := time.Now().Add(300 * time.Millisecond)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: deadline})
		errc <- err
	}()
	waitFor(t, "the request to queue", func() bool { return replicaStats(t, w, id).Queued == 1 })
	time.Sleep(time.Until(deadline) + 10*time.Millisecond)
	run(t, w) // the worker starts serving only now
	err := <-errc
	if !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "deadline passed") {
		t.Fatalf("a request whose deadline passed in the queue: %v, want ErrOverloaded saying its deadline passed", err)
	}
	s := replicaStats(t, w, id)
	if s.Refused != 1 || s.Batches != 0 || s.Completed != 0 {
		t.Fatalf("after shedding: refused %d, batches %d, completed %d; want 1, 0, 0", s.Refused, s.Batches, s.Completed)
	}
	if _, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: time.Now().Add(10 * time.Second)}); err != nil {
		t.Fatalf("a request with time to spare after the shed one: %v", err)
	}
}
