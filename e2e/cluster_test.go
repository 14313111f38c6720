package e2e

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/controller"
	"github.com/infaas/infaas/internal/cpuset"
	"github.com/infaas/infaas/internal/testredis"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/workerrpc"
)

// proc is one infaas process of a cluster test.
type proc struct {
	t    testing.TB
	name string
	args []string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: args, log: &syncBuffer{}}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(infaasBinary(p.t), p.args...)
	p.cmd.Env = append(os.Environ(), workerrpc.TokenEnv+"=cluster-test-token")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() { _ = cmd.Wait(); close(done) }()
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond every 20 ms until it holds, failing t after limit
// with the logs of procs.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool, procs ...*proc) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("waiting for %s: %s exited:\n%s", what, p.name, p.log.String())
			}
		}
		if time.Since(start) > limit {
			var logs strings.Builder
			for _, p := range procs {
				logs.WriteString("--- " + p.name + "\n" + tail(p.log.String(), 4000) + "\n")
			}
			t.Fatalf("%s: not after %s\n%s", what, limit, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ctrlProc is an `infaas controller`.
type ctrlProc struct {
	*proc
	http, grpc, cluster string
	c                   *client.Client
}

// startController runs `infaas controller` on free loopback ports against
// the Redis at redis (extra flags come last, so they can override the
// store).
func startController(t testing.TB, name, dir, redis string, extra ...string) *ctrlProc {
	t.Helper()
	httpAddr, grpcAddr, cluster := freeAddr(t), freeAddr(t), freeAddr(t)
	args := append([]string{"controller", "--id", name, "--data", dir, "--store", "redis://" + redis + "/0",
		"--http", httpAddr, "--grpc", grpcAddr, "--metrics", "", "--cluster", cluster, "--class", "cpu-2",
		"--profile-time", "40ms", "--heartbeat-timeout", "1s"}, extra...)
	c := &ctrlProc{proc: startProc(t, name, args...), http: httpAddr, grpc: grpcAddr, cluster: cluster, c: client.New(httpAddr)}
	c.waitLive()
	return c
}

func (c *ctrlProc) waitLive() {
	c.t.Helper()
	waitFor(c.t, c.name+" live", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + c.http + "/v2/health/live")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, c.proc)
}

// running lists the IDs of the workers the controller routes to.
func (c *ctrlProc) running() []string {
	ws, err := c.c.Workers(ctx(c.t))
	if err != nil {
		return nil
	}
	var ids []string
	for _, w := range ws {
		if w.Health == "running" {
			ids = append(ids, w.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func (c *ctrlProc) workerInfo(id string) controller.WorkerInfo {
	c.t.Helper()
	ws, err := c.c.Workers(ctx(c.t))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == id {
			return w
		}
	}
	c.t.Fatalf("no worker %s at %s", id, c.name)
	return controller.WorkerInfo{}
}

// cpuList names n of the CPUs this process may use, from the i-th on
// (wrapping), as a worker's --cpus takes them.
func cpuList(t testing.TB, i, n int) string {
	t.Helper()
	all, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for k := range n {
		out = append(out, all[(i+k)%len(all)])
	}
	slices.Sort(out)
	return cpuset.Format(slices.Compact(out))
}

func startWorkerProc(t testing.TB, id, class, cpus, repo string, controllers ...string) *proc {
	t.Helper()
	return startProc(t, id, "worker", "--id", id, "--class", class, "--cpus", cpus, "--repository", repo,
		"--controller", strings.Join(controllers, ","), "--profile-time", "40ms")
}

// TestCluster runs two controllers on one Redis with three workers of two
// hardware classes, as separate processes on loopback, and checks the
// cluster's promises one after another on the same set-up: a registration
// through one controller answers through the other within a second; the
// 1-core class is profiled on a 1-core worker and is not faster than the
// 2-core class on a multi-threaded variant; killing the worker that serves
// a sustained load loses no request and routing recovers within 2 s; a
// restarted controller keeps every registration and its workers re-attach
// within 5 s; and a paused Redis interrupts no query on loaded replicas
// while registrations fail with 503.
func TestCluster(t *testing.T) {
	redis, redisPID := testredis.StartProcess(t)
	dir := t.TempDir()
	repo := filepath.Join(dir, "models")
	a := startController(t, "ctrl-a", dir, redis)
	b := startController(t, "ctrl-b", dir, redis)
	workers := map[string]*proc{
		"w1": startWorkerProc(t, "w1", "cpu-1", cpuList(t, 0, 1), repo, a.cluster, b.cluster),
		"w2": startWorkerProc(t, "w2", "cpu-1", cpuList(t, 1, 1), repo, a.cluster, b.cluster),
		"w3": startWorkerProc(t, "w3", "cpu-2", cpuList(t, 0, 2), repo, a.cluster, b.cluster),
	}
	all := []*proc{a.proc, b.proc, workers["w1"], workers["w2"], workers["w3"]}
	want := []string{"w1", "w2", "w3"}
	waitFor(t, "three workers joined both controllers", 30*time.Second, func() bool {
		return slices.Equal(a.running(), want) && slices.Equal(b.running(), want)
	}, all...)
	if w := a.workerInfo("w1"); w.Hardware.Name != "cpu-1" || w.Hardware.Cores != 1 || !w.Remote || w.Address == "" {
		t.Fatalf("w1 as ctrl-a sees it: %+v", w)
	}

	// Registration through A answers through B within a second.
	set := mnist(t)
	in := samples(set, 0, 1)
	s := &server{t: t, c: a.c, log: a.log}
	s.registerZoo(t, "mnist-mlp-s")
	registered := time.Now()
	for {
		_, err := b.c.Infer(ctx(t), "mnist-mlp-s", in, nil)
		if err == nil {
			break
		}
		if time.Since(registered) > time.Second {
			t.Fatalf("ctrl-b does not answer for mnist-mlp-s 1 s after ctrl-a registered it: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("ctrl-b answered %s after ctrl-a's registration turned ready", time.Since(registered).Round(time.Millisecond))

	t.Run("profiles per class", func(t *testing.T) {
		// The cpu-1 class is profiled in the background on a cpu-1 worker.
		var vs []catalog.Variant
		waitFor(t, "every variant profiled on cpu-1", 2*time.Minute, func() bool {
			var err error
			vs, err = a.c.Variants(ctx(t), "mnist-mlp-s")
			if err != nil {
				return false
			}
			for _, v := range vs {
				if _, ok := v.ProfileOn("cpu-1"); !ok {
					return false
				}
			}
			return len(vs) > 0
		}, all...)
		for _, v := range vs {
			p1, _ := v.ProfileOn("cpu-1")
			p2, _ := v.ProfileOn("cpu-2")
			if v.Hardware != "cpu-2" || len(p1.LatencyMs) == 0 || p1.ThroughputQPS <= 0 || !strings.Contains(p1.Hardware, "cpu-1") {
				t.Fatalf("%s: reference class %s, cpu-1 profile %+v", v.Name, v.Hardware, p1)
			}
			t.Logf("%s p50@%d: cpu-1 %.3f ms, cpu-2 %.3f ms", v.Name, v.MaxBatch, p1.LatencyMs[v.MaxBatch].P50, p2.LatencyMs[v.MaxBatch].P50)
		}
		// Selection prices and estimates a replica with its worker's class.
		res, err := a.c.Infer(ctx(t), "mnist-mlp-s", in, map[string]any{"latency_ms": 200.0})
		if err != nil {
			t.Fatal(err)
		}
		served, _ := res.Parameters["worker"].(string)
		if cls := a.workerInfo(served).Hardware.Name; res.Parameters["class"] != cls {
			t.Fatalf("served on %s (class %s) with the profile of class %v", served, cls, res.Parameters["class"])
		}
		// A compute-bound two-thread variant measured through each worker:
		// on one core its threads take turns, on two they run side by side.
		repo, err := repository.Open(ctx(t), repo)
		if err != nil {
			t.Fatal(err)
		}
		defer repo.Close()
		model, err := os.ReadFile(zootest.Path(t, "models/mnist-cnn-m.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		digest, err := repo.Put(ctx(t), model)
		if err != nil {
			t.Fatal(err)
		}
		arch := catalog.Architecture{Name: "mnist-cnn-m", Contract: catalog.Contract{Batched: true,
			Inputs:  []catalog.TensorSpec{{Name: "input", DataType: "FP32", Shape: []int64{-1, 1, 28, 28}}},
			Outputs: []catalog.TensorSpec{{Name: "logits", DataType: "FP32", Shape: []int64{-1, 10}}}}}
		v := catalog.Variant{Name: "mnist-cnn-m.fp32.basic.t2.b32.cpu", Architecture: arch.Name, Precision: "fp32", OptLevel: "basic",
			Provider: "cpu", Threads: 2, MaxBatch: 32, FileDigest: digest, FileBytes: int64(len(model))}
		measure := func(id string) catalog.Profile {
			cl, err := workerrpc.Dial(ctx(t), a.workerInfo(id).Address, workerrpc.ClientAuth("cluster-test-token")...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			p, err := cl.Profile(ctx(t), v, arch)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		// Each measurement ran where its class's CPUs are: the child saw
		// only its worker's cores. Which is faster is a timing claim that a
		// busy machine can upset; BenchmarkProfileByClass measures it.
		one, two := measure("w1"), measure("w3")
		if !strings.HasPrefix(one.Hardware, "cpu-1 (1 cores") || !strings.HasPrefix(two.Hardware, "cpu-2 (2 cores") {
			t.Fatalf("profiles measured on %q and %q; want one core for cpu-1 and two for cpu-2", one.Hardware, two.Hardware)
		}
		if len(one.LatencyMs) != 5 || one.LatencyMs[32].Samples == 0 || two.LatencyMs[32].Samples == 0 {
			t.Fatalf("profiles: cpu-1 %+v, cpu-2 %+v", one.LatencyMs, two.LatencyMs)
		}
		t.Logf("%s p50 at batch 32: cpu-1 %.3f ms, cpu-2 %.3f ms", v.Name, one.LatencyMs[32].P50, two.LatencyMs[32].P50)
	})

	t.Run("a worker killed under load", func(t *testing.T) {
		type result struct {
			at     time.Time
			worker string
			err    error
		}
		var (
			mu      sync.Mutex
			results []result
			stop    = make(chan struct{})
			wg      sync.WaitGroup
		)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					at := time.Now()
					res, err := a.c.Infer(ctx(t), "mnist-mlp-s", in, map[string]any{"latency_ms": 200.0})
					r := result{at: at, err: err}
					if err == nil {
						r.worker, _ = res.Parameters["worker"].(string)
					}
					mu.Lock()
					results = append(results, r)
					mu.Unlock()
				}
			}()
		}
		lastWorker := func() string {
			mu.Lock()
			defer mu.Unlock()
			for i := len(results) - 1; i >= 0; i-- {
				if results[i].worker != "" {
					return results[i].worker
				}
			}
			return ""
		}
		waitFor(t, "load served", 30*time.Second, func() bool { return lastWorker() != "" }, all...)
		time.Sleep(500 * time.Millisecond) // sustained load before the kill
		victim := lastWorker()
		killed := time.Now()
		workers[victim].kill()
		time.Sleep(3 * time.Second) // sustained load after it
		close(stop)
		wg.Wait()

		var ok, failed, afterKill, servedByVictimLate int
		for _, r := range results {
			switch {
			case r.err == nil:
				ok++
				if r.at.After(killed) {
					afterKill++
				}
				if r.worker == victim && r.at.After(killed.Add(100*time.Millisecond)) {
					servedByVictimLate++
				}
			default:
				failed++
				var ce *client.Error
				if !errors.As(r.err, &ce) || ce.Status != http.StatusServiceUnavailable || !strings.Contains(ce.Message, "try") {
					t.Errorf("a request at kill%+v failed without a clear retryable error: %v", r.at.Sub(killed).Round(time.Millisecond), r.err)
				}
				if r.at.After(killed.Add(2 * time.Second)) {
					t.Errorf("a request sent %v after the kill failed; routing should have recovered within 2 s: %v",
						r.at.Sub(killed).Round(time.Millisecond), r.err)
				}
			}
		}
		if servedByVictimLate > 0 || afterKill == 0 {
			t.Fatalf("after killing %s: %d answers claim the dead worker, %d answers in all", victim, servedByVictimLate, afterKill)
		}
		t.Logf("killed %s under load: %d answered (%d after the kill), %d clear errors", victim, ok, afterKill, failed)
		waitFor(t, "the dead worker leaves routing", 2*time.Second, func() bool { return !slices.Contains(a.running(), victim) }, a.proc)
		// It comes back when restarted.
		workers[victim].start()
		waitFor(t, "the restarted worker rejoins", 30*time.Second, func() bool { return slices.Equal(a.running(), want) }, a.proc, workers[victim])
	})

	t.Run("controller restart", func(t *testing.T) {
		a.kill()
		a.start()
		a.waitLive()
		took := waitFor(t, "workers re-attach to the restarted controller", 5*time.Second, func() bool {
			return slices.Equal(a.running(), want)
		}, a.proc)
		t.Logf("workers re-attached %s after the restarted controller went live", took.Round(time.Millisecond))
		if _, err := a.c.Architecture(ctx(t), "mnist-mlp-s"); err != nil {
			t.Fatalf("the registration did not survive the restart: %v", err)
		}
		waitFor(t, "queries answered after the restart", 30*time.Second, func() bool {
			_, err := a.c.Infer(ctx(t), "mnist-mlp-s", in, nil)
			return err == nil
		}, a.proc)
	})

	t.Run("redis paused", func(t *testing.T) {
		// Load a replica on each controller's path first.
		for _, c := range []*ctrlProc{a, b} {
			if _, err := c.c.Infer(ctx(t), "mnist-mlp-s", in, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Kill(redisPID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(redisPID, syscall.SIGCONT)
			}
		}
		defer resume()
		regErr := make(chan error, 1)
		go func() {
			acc := 96.0
			_, err := a.c.Register(ctx(t), client.Registration{Name: "mnist-mlp-m", Task: "classification", Dataset: "mnist",
				ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx"), Accuracy: &acc})
			regErr <- err
		}()
		start := time.Now()
		n := 0
		for time.Since(start) < 5*time.Second {
			for _, c := range []*ctrlProc{a, b} {
				if _, err := c.c.Infer(ctx(t), "mnist-mlp-s", in, map[string]any{"latency_ms": 500.0}); err != nil {
					t.Fatalf("a query %v into the Redis pause failed at %s: %v", time.Since(start).Round(time.Millisecond), c.name, err)
				}
				n++
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case err := <-regErr:
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable {
				t.Fatalf("a registration while Redis is unreachable: %v; want 503", err)
			}
			t.Logf("registration during the pause: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("a registration during the Redis pause did not answer within 30 s")
		}
		resume()
		t.Logf("%d queries answered while Redis was paused for 5 s", n)
	})
}

// childrenOf lists the processes whose environment names pid as the
// parent that started them (the local provider's workers).
func childrenOf(t testing.TB, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	mark := []byte("INFAAS_PARENT_PID=" + strconv.Itoa(pid) + "\x00")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, mark) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && !bytes.Contains(st, []byte(") Z ")) {
				out = append(out, n)
			}
		}
	}
	return out
}

// TestServeWorkersDieWithIt: `infaas serve` runs its workers as child
// processes, and none outlives it — whether it stops cleanly or is killed.
func TestServeWorkersDieWithIt(t *testing.T) {
	for _, how := range []string{"stopped", "killed"} {
		t.Run(how, func(t *testing.T) {
			s := startServer(t, t.TempDir(), "--workers", "cpu-1,cpu-1")
			var ws []controller.WorkerInfo
			waitFor(t, "both workers joined", 30*time.Second, func() bool {
				var err error
				ws, err = s.c.Workers(ctx(t))
				return err == nil && len(ws) == 2
			})
			kids := childrenOf(t, s.cmd.Process.Pid)
			if len(ws) != 2 || len(kids) != 2 || !ws[0].Remote || ws[0].Hardware.Name != "cpu-1" {
				t.Fatalf("workers %+v, child processes %v", ws, kids)
			}
			if how == "stopped" {
				s.stop()
			} else {
				s.kill()
			}
			waitFor(t, "the workers exit with the server", 10*time.Second, func() bool {
				for _, k := range kids {
					if syscall.Kill(k, 0) == nil {
						if st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(k), "stat")); err == nil && !bytes.Contains(st, []byte(") Z ")) {
							return false
						}
					}
				}
				return true
			})
		})
	}
}

// TestEmptiedRedisDeletesNoBlob: Redis (no persistence) crashes and comes
// back empty under a running server, then the server restarts. Its
// collector sees a store that is not the one the model repository belongs
// to: no blob is deleted, and the log says why. The collection grace
// period is off (--gc-grace 0), so that the store identity alone keeps
// the blobs.
func TestEmptiedRedisDeletesNoBlob(t *testing.T) {
	redis := testredis.StartServer(t)
	dir := t.TempDir()
	args := []string{"--store", "redis://" + redis.Addr + "/0", "--gc-grace", "0"}
	s := startServer(t, dir, args...)
	s.registerZoo(t, "mnist-mlp-s")
	before := listBlobs(t, dir)
	if len(before) == 0 {
		t.Fatal("no blobs after a registration")
	}
	redis.Restart(t)
	// The running server reconnects and sees an empty catalogue.
	waitFor(t, "the running server to see the emptied store", 10*time.Second, func() bool {
		l, err := s.c.Models(ctx(t))
		return err == nil && len(l.Architectures) == 0
	})
	s.stop()
	s2 := startServer(t, dir, args...)
	waitFor(t, "the collector's refusal in the log", 10*time.Second, func() bool {
		return strings.Contains(s2.log.String(), "not collecting garbage: the model repository belongs to another metadata store")
	})
	if after := listBlobs(t, dir); !slices.Equal(after, before) {
		t.Fatalf("blobs after Redis was emptied and the server restarted: %d, before %d", len(after), len(before))
	}
	if _, err := s2.c.Infer(ctx(t), "classification.mnist", samples(mnist(t), 0, 1), nil); !isStatus(err, 404) {
		t.Fatalf("a query after the store was emptied: %v, want 404 (the catalog is gone, the files are not)", err)
	}
}
