package workerrpc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// workerAPI is the method set the controller needs from a worker; the
// real interface lives in package controller. Both the gRPC client and
// the in-process worker must satisfy it.
type workerAPI interface {
	ID() string
	Load(ctx context.Context, v catalog.Variant, a catalog.Architecture) (string, error)
	Unload(id string) error
	Infer(ctx context.Context, id string, req worker.Request) (worker.Response, error)
	State() worker.Status
}

var (
	_ workerAPI = (*Client)(nil)
	_ workerAPI = Local{}
)

// allSentinels lists the worker's sentinel errors.
var allSentinels = []error{
	worker.ErrNoMemory, worker.ErrOverloaded, worker.ErrUnknownReplica, worker.ErrNotReady,
	worker.ErrDraining, worker.ErrBadInput, worker.ErrIncompatible, worker.ErrStopped,
}

// checkIs fails unless err matches want and no other worker sentinel.
func checkIs(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v (%T) does not match %v", err, err, want)
	}
	for _, s := range allSentinels {
		if s != want && errors.Is(err, s) {
			t.Errorf("error %v matches %v besides %v", err, s, want)
		}
	}
}

// TestConformance runs one scenario against both implementations of the
// worker API — the in-process worker and the gRPC client in front of one —
// and checks that they answer alike: the same output bytes, the same
// errors (sentinels and messages), the same state.
func TestConformance(t *testing.T) {
	z := newZoo(t)
	impls := []struct {
		name string
		api  func(*testing.T, *worker.Worker) workerAPI
	}{
		{"local", func(_ *testing.T, w *worker.Worker) workerAPI { return Local{w} }},
		{"grpc", func(t *testing.T, w *worker.Worker) workerAPI { return serve(t, w) }},
	}
	outputs := map[string][]byte{}
	messages := map[string][]string{}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorker(t, z.repo, nil)
			run(t, w)
			api := impl.api(t, w)
			if got := api.ID(); got != "w1" {
				t.Errorf("ID = %q, want w1", got)
			}
			v, a := z.variant(16)
			id, err := api.Load(ctx, v, a)
			if err != nil {
				t.Fatal(err)
			}

			asked := health.Asked{LatencyMs: 250, MinAccuracy: 97.5, Pinned: true}
			resp, err := api.Infer(ctx, id, worker.Request{Inputs: pixels(z.raw(0, 8)), Batch: 8, Deadline: time.Now().Add(time.Second), Asked: asked})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(resp.Outputs[0].Shape, []int64{8, 10}) || resp.Outputs[0].Datatype != "FP32" || len(resp.Outputs[0].Data) != 8*10*4 {
				t.Fatalf("response shape %v datatype %s with %d bytes, want [8 10] FP32 with 320", resp.Outputs[0].Shape, resp.Outputs[0].Datatype, len(resp.Outputs[0].Data))
			}
			if resp.Replica != id || resp.Variant != v.Name || resp.BatchSize != 8 || resp.ComputeTime <= 0 {
				t.Errorf("response replica %q variant %q batch %d compute %v, want %q %q 8 and a positive compute time",
					resp.Replica, resp.Variant, resp.BatchSize, resp.ComputeTime, id, v.Name)
			}
			outputs[impl.name] = resp.Outputs[0].Data

			st := api.State()
			if st.ID != "w1" || !st.Running || st.MemoryCapacity != 1<<30 || st.MemoryReserved <= 0 {
				t.Errorf("state: id %q running %v capacity %d reserved %d", st.ID, st.Running, st.MemoryCapacity, st.MemoryReserved)
			}
			if len(st.Replicas) != 1 || st.Replicas[0].ID != id || st.Replicas[0].State != worker.StateReady || st.Replicas[0].Stats.Completed != 1 {
				t.Errorf("state replicas: %+v, want %s ready with one completed request", st.Replicas, id)
			}
			if len(st.Replicas) == 1 && st.Replicas[0].Stats.Asked != asked {
				t.Errorf("the replica reports it was asked %+v, want %+v", st.Replicas[0].Stats.Asked, asked)
			}

			badVariant := v
			badVariant.FileDigest = ""
			errCases := []struct {
				name       string
				call       func() error
				want       error
				sameAcross bool // the message is deterministic
			}{
				{"infer unknown replica", func() error {
					_, err := api.Infer(ctx, "nope#9", worker.Request{Inputs: pixels(z.raw(0, 1)), Batch: 1})
					return err
				}, worker.ErrUnknownReplica, true},
				{"unload unknown replica", func() error { return api.Unload("nope#9") }, worker.ErrUnknownReplica, true},
				{"bad byte count", func() error {
					_, err := api.Infer(ctx, id, worker.Request{Inputs: pixels(z.raw(0, 1)[:12]), Batch: 1})
					return err
				}, worker.ErrBadInput, true},
				{"batch zero", func() error {
					_, err := api.Infer(ctx, id, worker.Request{Batch: 0})
					return err
				}, worker.ErrBadInput, true},
				{"batch over max", func() error {
					_, err := api.Infer(ctx, id, worker.Request{Inputs: pixels(z.raw(0, 17)), Batch: 17})
					return err
				}, worker.ErrBadInput, true},
				{"no file digest", func() error { _, err := api.Load(ctx, badVariant, a); return err }, worker.ErrIncompatible, true},
				{"deadline cannot be met", func() error {
					_, err := api.Infer(ctx, id, worker.Request{Inputs: pixels(z.raw(0, 1)), Batch: 1, Deadline: time.Now().Add(-time.Second)})
					return err
				}, worker.ErrOverloaded, false},
			}
			for _, tc := range errCases {
				err := tc.call()
				checkIs(t, err, tc.want)
				if tc.sameAcross {
					messages[impl.name] = append(messages[impl.name], err.Error())
				}
			}

			if err := api.Unload(id); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the replica to go", func() bool { return len(api.State().Replicas) == 0 })
			_, err = api.Infer(ctx, id, worker.Request{Inputs: pixels(z.raw(0, 1)), Batch: 1})
			checkIs(t, err, worker.ErrUnknownReplica)
			if st := api.State(); st.MemoryReserved != 0 {
				t.Errorf("reserved %d bytes after unloading everything", st.MemoryReserved)
			}
		})
	}
	if !bytes.Equal(outputs["local"], outputs["grpc"]) {
		t.Errorf("outputs differ:\nlocal %x\ngrpc  %x", outputs["local"], outputs["grpc"])
	}
	if !slices.Equal(messages["local"], messages["grpc"]) {
		t.Errorf("error messages differ:\nlocal %q\ngrpc  %q", messages["local"], messages["grpc"])
	}
}

// TestSameReplicaBothWays loads over gRPC and checks that inference over
// gRPC and in process give identical bytes, and that State survives the
// round trip unchanged.
func TestSameReplicaBothWays(t *testing.T) {
	z := newZoo(t)
	w := newWorker(t, z.repo, nil)
	run(t, w)
	c := serve(t, w)
	ctx := context.Background()
	v, a := z.variant(8)
	id, err := c.Load(ctx, v, a)
	if err != nil {
		t.Fatal(err)
	}
	req := worker.Request{Inputs: pixels(z.raw(100, 8)), Batch: 8}
	remote, err := c.Infer(ctx, id, req)
	if err != nil {
		t.Fatal(err)
	}
	local, err := w.Infer(ctx, id, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(remote.Outputs[0].Data, local.Outputs[0].Data) || !slices.Equal(remote.Outputs[0].Shape, local.Outputs[0].Shape) || remote.Outputs[0].Datatype != local.Outputs[0].Datatype {
		t.Errorf("gRPC answered %v %s %x, in process %v %s %x", remote.Outputs[0].Shape, remote.Outputs[0].Datatype, remote.Outputs[0].Data, local.Outputs[0].Shape, local.Outputs[0].Datatype, local.Outputs[0].Data)
	}
	// The model is good: most of the 8 images are classified right.
	right := 0
	for i, c := range argmax(remote.Outputs[0].Data, 10) {
		if c == z.mnist.Labels[100+i] {
			right++
		}
	}
	if right < 7 {
		t.Errorf("%d of 8 images classified right", right)
	}

	got, want := c.State(), w.State()
	if got.At.IsZero() || got.At.After(want.At) {
		t.Errorf("remote state taken at %v, local at %v", got.At, want.At)
	}
	if !reflect.DeepEqual(stable(got), stable(want)) {
		t.Errorf("state over gRPC:\n%+v\nin process:\n%+v", got, want)
	}
}

// stable drops what changes between two snapshots taken moments apart
// (the time, the window's span and rates, the slowness fading with idle
// time) and the monotonic clock reading JSON loses.
func stable(st worker.Status) worker.Status {
	st.At = time.Time{}
	st.Replicas = slices.Clone(st.Replicas)
	for i := range st.Replicas {
		r := &st.Replicas[i]
		r.LoadedAt = r.LoadedAt.Round(0).UTC()
		r.Stats.Window, r.Stats.QPS, r.Stats.InferencesPerSecond, r.Stats.Slowness = 0, 0, 0, 0
	}
	return st
}

// TestErrorsEndToEnd provokes over gRPC the worker errors that need a
// particular worker: out of memory, a replica still loading, one unloaded
// while loading, a stopped worker, and the caller's context ending.
func TestErrorsEndToEnd(t *testing.T) {
	z := newZoo(t)
	ctx := context.Background()
	v, a := z.variant(8)
	one := worker.Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}

	t.Run("no memory", func(t *testing.T) {
		w := newWorker(t, z.repo, func(c *worker.Config) { c.MemoryBytes = 1 << 20 })
		run(t, w)
		c := serve(t, w)
		_, err := c.Load(ctx, v, a)
		checkIs(t, err, worker.ErrNoMemory)
		if code := status.Code(err); code != codes.ResourceExhausted {
			t.Errorf("code %v, want ResourceExhausted", code)
		}
	})

	t.Run("not ready and draining", func(t *testing.T) {
		g := &gatedBlobs{Blobs: z.repo, entered: make(chan struct{}), release: make(chan struct{})}
		w := newWorker(t, g, nil)
		run(t, w)
		c := serve(t, w)
		loaded := make(chan error, 1)
		go func() {
			_, err := c.Load(ctx, v, a)
			loaded <- err
		}()
		<-g.entered // the replica is registered and fetching its graph
		st := c.State()
		if len(st.Replicas) != 1 || st.Replicas[0].State != worker.StateLoading {
			close(g.release)
			<-loaded
			t.Fatalf("replicas while loading: %+v", st.Replicas)
		}
		id := st.Replicas[0].ID
		_, err := c.Infer(ctx, id, one)
		checkIs(t, err, worker.ErrNotReady)
		if err := c.Unload(id); err != nil {
			t.Error(err)
		}
		close(g.release)
		checkIs(t, <-loaded, worker.ErrDraining)
	})

	t.Run("stopped", func(t *testing.T) {
		w := newWorker(t, z.repo, nil)
		stop := run(t, w)
		c := serve(t, w)
		id, err := c.Load(ctx, v, a)
		if err != nil {
			t.Fatal(err)
		}
		stop()
		_, err = c.Infer(ctx, id, one)
		checkIs(t, err, worker.ErrStopped)
		_, err = c.Load(ctx, v, a)
		checkIs(t, err, worker.ErrStopped)
		if st := c.State(); st.ID != "w1" || st.Running {
			t.Errorf("state of a stopped worker: id %q running %v", st.ID, st.Running)
		}
	})

	t.Run("context", func(t *testing.T) {
		w := newWorker(t, z.repo, nil)
		run(t, w)
		c := serve(t, w)
		id, err := c.Load(ctx, v, a)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = c.Infer(cctx, id, one)
		if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
			t.Errorf("cancelled call: %v (code %v)", err, status.Code(err))
		}
		dctx, cancel := context.WithTimeout(ctx, -time.Second)
		defer cancel()
		_, err = c.Infer(dctx, id, one)
		if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("expired call: %v (code %v)", err, status.Code(err))
		}
	})
}

// TestClientConnection covers the connection's life: a Client over a
// connection its caller owns, a worker that goes away, and Dial to no one.
func TestClientConnection(t *testing.T) {
	z := newZoo(t)
	w := newWorker(t, z.repo, nil)
	run(t, w)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	gs := grpc.NewServer(ServerOptions()...)
	workerpb.RegisterWorkerServer(gs, NewServer(w))
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := NewClient(conn)
	if got := c.ID(); got != "w1" {
		t.Errorf("ID = %q, want w1", got)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := c.State(); !st.Running { // Close left the caller's connection open
		t.Error("state after Close of a NewClient client: not running")
	}

	gs.Stop()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if st := c.State(); st.Running || st.ID != "w1" {
		t.Errorf("state of an unreachable worker: running %v id %q, want not running with the known ID", st.Running, st.ID)
	}
	_, err = c.Infer(context.Background(), "x#1", worker.Request{Inputs: pixels(z.raw(0, 1)), Batch: 1})
	if err == nil || status.Code(err) != codes.Unavailable {
		t.Errorf("infer on an unreachable worker: %v (code %v), want Unavailable", err, status.Code(err))
	}
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			t.Errorf("a transport failure matches %v", s)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := Dial(ctx, addr); err == nil {
		c.Close()
		t.Error("Dial to a closed port succeeded")
	}
}
