package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// cluster is a controller with remote workers: real workers behind real
// gRPC servers on loopback that join through the Registry service.
type cluster struct {
	c       *Controller
	repo    *repository.Repository
	cluster string
	workers map[string]*remoteRig
	dialled map[string]*flaky
	pix     []byte
}

type remoteRig struct {
	wk     *worker.Worker
	mute   sync.RWMutex // held to stop the worker's reports
	gs     *grpc.Server
	cancel context.CancelFunc // ends the worker and its announcer
	done   chan struct{}
}

// flaky wraps a dialled worker; failNext makes its next Infer fail the way
// a dead connection does.
type flaky struct {
	RemoteWorker
	failNext atomic.Bool
}

func (f *flaky) Infer(ctx context.Context, id string, req worker.Request) (worker.Response, error) {
	if f.failNext.Swap(false) {
		return worker.Response{}, status.Error(codes.Unavailable, "connection reset by peer (test)")
	}
	return f.RemoteWorker.Infer(ctx, id, req)
}

const testToken = "members-test-token"

func newCluster(t testing.TB, ids ...string) *cluster {
	t.Helper()
	return newClusterWith(t, 2*time.Second, ids...)
}

func newClusterWith(t testing.TB, heartbeat time.Duration, ids ...string) *cluster {
	t.Helper()
	ctx := context.Background()
	store, repo, _ := seedStore(t)
	hw := catalog.LocalCPU()
	cl := &cluster{repo: repo, workers: map[string]*remoteRig{}, dialled: map[string]*flaky{}}
	cfg := DefaultConfig()
	cfg.Classes = []catalog.HardwareClass{hw}
	cfg.HeartbeatTimeout = heartbeat
	dialled := make(chan *flaky, len(ids)*4)
	cfg.Dial = func(ctx context.Context, addr string) (RemoteWorker, error) {
		w, err := workerrpc.Dial(ctx, addr, workerrpc.ClientAuth(testToken)...)
		if err != nil {
			return nil, err
		}
		f := &flaky{RemoteWorker: w}
		dialled <- f
		return f, nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(cfg, store, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	cl.c = c
	runCtx, cancel := context.WithCancel(ctx)
	ctrlDone := make(chan struct{})
	go func() { _ = c.Run(runCtx); close(ctrlDone) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl.cluster = ln.Addr().String()
	rs := grpc.NewServer(workerrpc.ServerAuth(testToken)...)
	workerpb.RegisterRegistryServer(rs, workerrpc.NewRegistryServer(c))
	go func() { _ = rs.Serve(ln) }()
	t.Cleanup(func() {
		for _, w := range cl.workers {
			w.stop()
		}
		rs.Stop()
		cancel()
		<-ctrlDone
		store.Close()
		repo.Close()
	})
	for _, id := range ids {
		cl.startWorker(t, id, hw)
	}
	waitUntil(t, "workers joined", func() bool { return len(cl.running()) == len(ids) })
	for range ids {
		f := <-dialled
		cl.dialled[f.ID()] = f
	}
	cl.pix = zootest.Validation(t, "mnist").FP32(1)
	return cl
}

func (cl *cluster) startWorker(t testing.TB, id string, hw catalog.HardwareClass) {
	t.Helper()
	wk, err := worker.New(worker.Config{ID: id, Hardware: hw, MemoryBytes: 1 << 30}, cl.repo)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append(workerrpc.ServerOptions(), workerrpc.ServerAuth(testToken)...)...)
	workerpb.RegisterWorkerServer(gs, workerrpc.NewServer(wk))
	ctx, cancel := context.WithCancel(context.Background())
	r := &remoteRig{wk: wk, gs: gs, cancel: cancel, done: make(chan struct{})}
	state := func() worker.Status {
		r.mute.RLock()
		defer r.mute.RUnlock()
		return wk.State()
	}
	ann := &workerrpc.Announcer{Controller: cl.cluster, State: state, DialOptions: workerrpc.ClientAuth(testToken),
		Hello: workerrpc.Hello{WorkerID: id, Address: ln.Addr().String(), Class: hw, Incarnation: "1"}}
	go func() { _ = gs.Serve(ln) }()
	go func() {
		defer close(r.done)
		wdone := make(chan struct{})
		go func() { _ = wk.Run(ctx); close(wdone) }()
		_ = ann.Run(ctx)
		<-wdone
	}()
	cl.workers[id] = r
}

// stop ends a worker abruptly: its server drops every connection.
func (r *remoteRig) stop() {
	r.gs.Stop()
	r.cancel()
	<-r.done
}

func (cl *cluster) running() []string {
	var ids []string
	for _, w := range cl.c.Workers() {
		if w.Health == "running" {
			ids = append(ids, w.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func (cl *cluster) infer(t testing.TB, model string) *inference.InferResponse {
	t.Helper()
	resp, err := cl.c.Infer(context.Background(), &inference.InferRequest{Model: model, Inputs: []inference.Tensor{{
		Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}, Data: cl.pix[:784*4]}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRemoteWorkersJoinAndServe(t *testing.T) {
	cl := newCluster(t, "r1", "r2")
	ws := cl.c.Workers()
	if len(ws) != 2 || !ws[0].Remote || ws[0].Address == "" || ws[0].Hardware.Name != catalog.LocalCPU().Name || ws[0].LastReport.IsZero() {
		t.Fatalf("workers: %+v", ws)
	}
	resp := cl.infer(t, "mnist-mlp-s")
	if w := resp.Parameters["worker"]; w != "r1" && w != "r2" {
		t.Fatalf("served by %v", w)
	}
}

// A worker whose connection fails under a request: the request is retried
// once on the other worker and answers; the failed worker is out of routing
// until it reports again.
func TestRetryOnAnotherWorkerWhenOneFails(t *testing.T) {
	cl := newCluster(t, "r1", "r2")
	first := cl.infer(t, "mnist-mlp-s.fp32.all.t1.b1.cpu")
	victim := first.Parameters["worker"].(string)
	other := "r1"
	if victim == "r1" {
		other = "r2"
	}
	cl.dialled[victim].failNext.Store(true)
	resp := cl.infer(t, "mnist-mlp-s.fp32.all.t1.b1.cpu")
	if resp.Parameters["worker"] != other || resp.Parameters["retried_after"] != victim {
		t.Fatalf("after %s failed: served by %v, retried_after %v", victim, resp.Parameters["worker"], resp.Parameters["retried_after"])
	}
	// The next report brings it back.
	waitUntil(t, "the suspected worker back in routing", func() bool { return len(cl.running()) == 2 })

	// Both fail: the client is told where, and to try again.
	cl.dialled["r1"].failNext.Store(true)
	cl.dialled["r2"].failNext.Store(true)
	_, err := cl.c.Infer(context.Background(), &inference.InferRequest{Model: "mnist-mlp-s.fp32.all.t1.b1.cpu", Inputs: []inference.Tensor{{
		Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}, Data: cl.pix[:784*4]}}})
	if !errors.Is(err, ErrNotReady) || !regexp.MustCompile(`failed on worker r[12] and then on r[12]; try again`).MatchString(err.Error()) {
		t.Fatalf("both workers failing: %v", err)
	}
	waitUntil(t, "both back in routing", func() bool { return len(cl.running()) == 2 })
}

// A replica unloaded behind the controller's back (by another controller's
// autoscaler, say), before its worker's next report: the request that
// finds it gone is retried elsewhere and answers, and the retry does not
// pick the same vanished replica from the stale report (it did: "two
// workers failed during the request", a 503 in every scale-in).
func TestVanishedReplicaLeavesRoutingAtOnce(t *testing.T) {
	cl := newCluster(t, "r1", "r2")
	const pinned = "mnist-mlp-s.fp32.all.t1.b1.cpu"
	first := cl.infer(t, pinned)
	victim, replica := first.Parameters["worker"].(string), first.Parameters["replica"].(string)
	rig := cl.workers[victim]
	rig.mute.Lock() // the controller keeps its last report, which shows the replica
	muted := true
	defer func() {
		if muted {
			rig.mute.Unlock()
		}
	}()
	if err := rig.wk.Unload(replica); err != nil {
		t.Fatal(err)
	}
	resp := cl.infer(t, pinned)
	if resp.Parameters["retried_after"] != victim || resp.Parameters["replica"] == replica {
		t.Fatalf("after %s on %s vanished: served by %v on %v, retried_after %v", replica, victim,
			resp.Parameters["replica"], resp.Parameters["worker"], resp.Parameters["retried_after"])
	}
	// Later requests do not try it first.
	if again := cl.infer(t, pinned); again.Parameters["retried_after"] != nil {
		t.Fatalf("the vanished replica was tried again: %v", again.Parameters)
	}
	rig.mute.Unlock()
	muted = false
}

// TestFailedUnder: which failures of a call to a worker are retried
// elsewhere, and which make the worker suspect.
func TestFailedUnder(t *testing.T) {
	live, done := context.Background(), func() context.Context {
		c, cancel := context.WithCancel(context.Background())
		cancel()
		return c
	}()
	for _, tt := range []struct {
		name           string
		ctx            context.Context
		err            error
		retry, suspect bool
	}{
		{"answered", live, nil, false, false},
		{"worker stopping", live, worker.ErrStopped, true, true},
		{"replica gone", live, fmt.Errorf("x: %w", worker.ErrUnknownReplica), true, false},
		{"replica draining (a scale-in)", live, fmt.Errorf("x: %w", worker.ErrDraining), true, false},
		{"connection lost", live, status.Error(codes.Unavailable, "reset"), true, true},
		{"overloaded: the client retries", live, worker.ErrOverloaded, false, false},
		{"bad input", live, worker.ErrBadInput, false, false},
		{"the caller gave up", done, status.Error(codes.Canceled, "canceled"), false, false},
	} {
		if retry, suspect := failedUnder(tt.ctx, tt.err); retry != tt.retry || suspect != tt.suspect {
			t.Errorf("%s: retry %v suspect %v, want %v %v", tt.name, retry, suspect, tt.retry, tt.suspect)
		}
	}
}

// A worker that goes away leaves routing at once (its stream ends), queries
// go to the other one, and a worker with the same ID that starts again
// rejoins.
func TestWorkerLeavesAndRejoins(t *testing.T) {
	cl := newCluster(t, "r1", "r2")
	cl.infer(t, "mnist-mlp-s")
	cl.workers["r1"].stop()
	waitUntil(t, "r1 out of routing", func() bool { return slices.Equal(cl.running(), []string{"r2"}) })
	for range 3 {
		if w := cl.infer(t, "mnist-mlp-s").Parameters["worker"]; w != "r2" {
			t.Fatalf("served by %v after r1 left", w)
		}
	}
	cl.c.leave("r1", "mnist-mlp-s.fp32.all.t1.b1.cpu#1") // as if the old process had been unloading it
	cl.startWorker(t, "r1", catalog.LocalCPU())
	waitUntil(t, "r1 rejoined", func() bool { return slices.Equal(cl.running(), []string{"r1", "r2"}) })
	// The new process numbers its replicas afresh: nothing of the old one
	// is kept out of routing.
	cl.c.mu.Lock()
	left := len(cl.c.leaving)
	cl.c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d replicas of the old r1 still leaving after it rejoined", left)
	}
}

// A worker of a class the controller does not know is refused with a
// message naming the known classes.
func TestJoinRefusesUnknownClass(t *testing.T) {
	cl := newCluster(t, "r1")
	_, err := cl.c.Join(context.Background(), workerrpc.Hello{WorkerID: "x", Address: "127.0.0.1:1",
		Class: catalog.HardwareClass{Name: "tpu-9", Provider: "cpu", Cores: 1, MemoryBytes: 1}})
	if err == nil || !strings.Contains(err.Error(), "tpu-9") || !strings.Contains(err.Error(), catalog.LocalCPU().Name) {
		t.Fatalf("join of an unknown class: %v", err)
	}
}

// BenchmarkInferRemote is BenchmarkInfer with the worker behind its gRPC
// service on loopback (the controller-to-worker hop of a cluster, without
// a second process): the difference is what the hop costs.
func BenchmarkInferRemote(b *testing.B) {
	cl := newCluster(b, "r1")
	model := "mnist-cnn-m.fp32.all.t1.b1.cpu"
	cl.infer(b, model)
	b.ReportAllocs()
	for b.Loop() {
		cl.infer(b, model)
	}
}

// A worker that stops reporting leaves routing after the heartbeat
// timeout; when it reports again it is told to join afresh, and does.
func TestSilentWorkerLeavesAndRejoins(t *testing.T) {
	cl := newClusterWith(t, 300*time.Millisecond, "r1", "r2")
	r1 := cl.workers["r1"]
	r1.mute.Lock()
	muted := true
	defer func() {
		if muted {
			r1.mute.Unlock()
		}
	}()
	waitUntil(t, "silent r1 dropped", func() bool {
		ws := cl.c.Workers()
		return len(ws) == 1 && ws[0].ID == "r2"
	})
	if w := cl.infer(t, "mnist-mlp-s").Parameters["worker"]; w != "r2" {
		t.Fatalf("served by %v while r1 is silent", w)
	}
	r1.mute.Unlock()
	muted = false
	waitUntil(t, "r1 back after it reports again", func() bool { return slices.Equal(cl.running(), []string{"r1", "r2"}) })
}

// The same variant loaded on two workers: both replicas (each "#1" on its
// own worker) are in the snapshot, and concurrent queries use both.
func TestSameVariantOnTwoWorkers(t *testing.T) {
	cl := newCluster(t, "r1", "r2")
	name := "mnist-mlp-s.fp32.all.t1.b1.cpu"
	v := cl.c.view.Load()
	x, a := v.variants[name], v.archs["mnist-mlp-s"]
	for _, id := range []string{"r1", "r2"} {
		if _, err := cl.workers[id].wk.Load(context.Background(), x, a); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "both replicas in the snapshot", func() bool {
		cl.c.refreshState()
		s := cl.c.view.Load().snap
		n := 0
		for i := range s.NumReplicas() {
			if r := s.Replica(int32(i)); r.Variant == name && !r.Loading {
				n++
			}
		}
		return n == 2
	})
	// The live in-flight counts steer each query to the idler replica.
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := map[string]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				resp, err := cl.c.Infer(context.Background(), &inference.InferRequest{Model: name, Inputs: []inference.Tensor{{
					Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}, Data: cl.pix[:784*4]}}})
				if err != nil {
					t.Error(err)
					return
				}
				w := resp.Parameters["worker"].(string)
				mu.Lock()
				served[w]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if served["r1"] == 0 || served["r2"] == 0 {
		t.Fatalf("400 concurrent queries served by %v; want both workers", served)
	}
}

// TestTrafficOfEveryController: the model autoscaler's view of what a
// variant's traffic asked holds what this controller's queries asked and
// what the worker was asked by any other controller (reported in its
// replica's stats), so that a controller scaling for several never
// replaces a variant with one that misses another's requirements. A
// replica asked nothing stated adds nothing: the variant keeps the
// autoscaler's cautious default.
func TestTrafficOfEveryController(t *testing.T) {
	cl := newCluster(t, "r1")
	const name, quiet = "mnist-mlp-s.fp32.all.t1.b1.cpu", "mnist-cnn-m.fp32.all.t1.b1.cpu"
	v := cl.c.view.Load()
	wk := cl.workers["r1"].wk
	ids := map[string]string{}
	for _, n := range []string{name, quiet} {
		x, ok := v.variants[n]
		if !ok {
			t.Fatalf("no variant %s in the seeded catalog", n)
		}
		id, err := wk.Load(context.Background(), x, v.archs[x.Architecture])
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
	}
	waitUntil(t, "both replicas ready in the snapshot", func() bool {
		cl.c.refreshState()
		s := cl.c.view.Load().snap
		n := 0
		for i := range s.NumReplicas() {
			if !s.Replica(int32(i)).Loading {
				n++
			}
		}
		return n == 2
	})
	one := func(n string) []inference.Tensor {
		shape := []int64{1, 1, 28, 28}
		if v.archs[v.variants[n].Architecture].Contract.Inputs[0].Shape[1] == 784 {
			shape = []int64{1, 784}
		}
		return []inference.Tensor{{Name: "input", Datatype: "FP32", Shape: shape, Data: cl.pix[:784*4]}}
	}
	// Another controller's queries reach the worker directly.
	other := health.Asked{LatencyMs: 40, MinAccuracy: 99}
	if _, err := wk.Infer(context.Background(), ids[name], worker.Request{Inputs: one(name), Batch: 1, Asked: other}); err != nil {
		t.Fatal(err)
	}
	if _, err := wk.Infer(context.Background(), ids[quiet], worker.Request{Inputs: one(quiet), Batch: 1}); err != nil {
		t.Fatal(err)
	}
	// This controller's own query names the variant, with a looser target.
	if _, err := cl.c.Infer(context.Background(), &inference.InferRequest{Model: name, Inputs: one(name),
		Requirements: inference.Requirements{LatencyMs: 500}}); err != nil {
		t.Fatal(err)
	}
	want := health.Asked{LatencyMs: 40, MinAccuracy: 99, Pinned: true}
	waitUntil(t, "the worker's report to carry what it was asked", func() bool {
		cl.c.refreshState()
		st, ok := cl.c.autoscaleState(time.Now())
		return ok && st.Traffic[name] == want
	})
	st, _ := cl.c.autoscaleState(time.Now())
	if got, ok := st.Traffic[quiet]; ok {
		t.Errorf("a replica asked nothing stated has traffic %+v; want none (the autoscaler's default)", got)
	}
	if own, _ := cl.c.traffic.Snapshot(time.Now()); own[name] != (health.Asked{LatencyMs: 500, Pinned: true}) {
		t.Errorf("the controller's own log holds %+v for %s; want only its own query's requirements", own[name], name)
	}
}
