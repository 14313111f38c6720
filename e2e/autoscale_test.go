package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/loadgen"
)

// The autoscaling tests serve a convolutional net slow enough (milliseconds
// per image) for a worker of one core to saturate at a few hundred queries
// a second: the zoo's models take microseconds, and the per-request
// overhead would saturate first. 192 channels keep the int8 variants
// (ConvInteger, about 2.4 times as fast as fp32 here) at about 3 ms an
// image, so the load generator and the server, which take some 2 ms of
// CPU a query on the same two cores, stay a modest share at the peak
// loads these tests drive (at 136 channels the simulator's p99 fell 20 %
// short of the live one in half the runs of TestSimulatorFidelity).
const (
	convChannels = 192
	convLayers   = 3
	convDynamic  = true
)

// autoscaleArgs are serve flags with windows short enough for a test.
var autoscaleArgs = []string{"--class", "cpu-1", "--scale-up-window", "1s", "--scale-down-window", "3s",
	"--scale-cooldown", "2s", "--idle-unload", "-1s", "--log-level", "debug"}

// autoscaleFlags are autoscaleArgs, and for a test (not a benchmark) a
// profile cache shared by every test of this run: four tests register the
// same conv net on cpu-1, and the first to do so measures it (some 15 s
// of profiling on the 2-core VM) while the others reuse its profiles, as
// a user registering the same graph again on the same machine would. A
// benchmark measures its own registration: each of its runs is one draw
// of it too.
func autoscaleFlags(tb testing.TB) []string {
	if _, ok := tb.(*testing.T); !ok {
		return autoscaleArgs
	}
	return append(slices.Clip(autoscaleArgs), "--profile-cache", sharedProfileCache())
}

// registerConvNet registers the slow net as architecture name and returns
// the most one replica of any of its variants sustains on cpu-1 in samples
// per second (the profiles' throughput, as the autoscaler reads it) and
// the least p99 at batch 1.
func registerConvNet(t testing.TB, s *server, name string) (capacity, p99 float64) {
	t.Helper()
	return registerConvNetOn(t, s, name, "cpu-1")
}

// registerConvNetOn is registerConvNet with the figures read on class.
func registerConvNetOn(t testing.TB, s *server, name, class string) (capacity, p99 float64) {
	t.Helper()
	c := ctx(t)
	_, err := s.c.Register(c, client.Registration{Name: name, Task: "classification", Dataset: "mnist",
		ModelPath: zootest.ConvNetFile(t, convChannels, convLayers, convDynamic), Accuracy: ptr(90.0), InputScale: 1})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if _, err := s.c.Wait(c, name, nil); err != nil {
		t.Fatalf("register %s: %v\n%s", name, err, s.log.String())
	}
	vs, err := s.c.Variants(c, name)
	if err != nil {
		t.Fatal(err)
	}
	p99 = math.Inf(1)
	for _, v := range vs {
		if p, ok := v.ProfileOn(class); ok && v.Threads == 1 {
			p99 = min(p99, p.P99At(1))
			capacity = max(capacity, p.ThroughputQPS)
		}
	}
	if math.IsInf(p99, 1) || p99 <= 0 {
		t.Fatalf("no 1-thread variant profiled on %s: %+v", class, vs)
	}
	t.Logf("%s: %d variants, least p99 %.2f ms at batch 1, up to %.0f samples/s per replica on %s", name, len(vs), p99, capacity, class)
	for _, v := range vs {
		t.Logf("  %s: max batch %d, p99 %.2f ms at 1, %.2f ms at max, %.0f/s", v.Name, v.MaxBatch, v.Profile.P99At(1), v.Profile.P99At(v.MaxBatch), v.Profile.ThroughputQPS)
	}
	return capacity, p99
}

// eventsOf reads the whole event log.
func eventsOf(t testing.TB, s *server) []events.Event {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + "/v1/events?limit=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Events []events.Event `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Events
}

func logEvents(t *testing.T, es []events.Event) {
	t.Helper()
	for _, e := range es {
		t.Log(e.String())
	}
}

// runLoad drives the server over HTTP with one requirement set.
func runLoad(t testing.TB, s *server, schedule string, set loadgen.RequirementSet, onRow func(loadgen.Row)) (loadgen.Summary, []loadgen.Row) {
	t.Helper()
	sender := loadgen.NewHTTPSender("http://"+s.addr, 64, 1)
	defer sender.Close()
	return runLoadVia(t, sender, schedule, set, onRow)
}

// runLoadVia is runLoad through sender.
func runLoadVia(t testing.TB, sender loadgen.Sender, schedule string, set loadgen.RequirementSet, onRow func(loadgen.Row)) (loadgen.Summary, []loadgen.Row) {
	t.Helper()
	sched, err := loadgen.ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	set.Weight = 1
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, rows, err := loadgen.Run(c, loadgen.Config{Schedule: sched, ScheduleName: schedule, Seed: 1, Mix: loadgen.Mix{set}, Sender: sender, OnRow: onRow})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load %s: sent %d answered %d refused %d failed %d violations %d (%.1f%%) p50 %.1f ms p99 %.1f ms statuses %v; %.2f ms queued, %.2f ms computing, %.2f ms outside the workers on average",
		schedule, sum.Sent, sum.Answered, sum.Refused, sum.Failed, sum.Violations, 100*sum.ViolationRate, sum.P50Ms, sum.P99Ms, sum.Statuses,
		sum.QueueMeanMs, sum.ComputeMeanMs, sum.OutsideMeanMs)
	if sum.Timed != sum.Answered {
		t.Errorf("%d of %d answers gave the server's timing", sum.Timed, sum.Answered)
	}
	return sum, rows
}

func find(es []events.Event, after time.Time, match func(events.Event) bool) (events.Event, bool) {
	for _, e := range es {
		if !e.Time.Before(after) && match(e) {
			return e, true
		}
	}
	return events.Event{}, false
}

// TestAutoscaleFluctuating is the first acceptance run: low, then
// high, then low load against one architecture on two one-core workers.
// The event log must show a scale-up at the peak with its cost comparison,
// an unload or downgrade in the trough, and at least 95 % of the answered
// queries must meet their latency target.
func TestAutoscaleFluctuating(t *testing.T) {
	s := startServer(t, t.TempDir(), append([]string{"--workers", "cpu-1,cpu-1"}, autoscaleFlags(t)...)...)
	capacity, p99 := registerConvNet(t, s, "convnet")
	// The peak is 0.9 of one replica's profiled capacity: over the 80 %
	// the autoscaler scales up at, within what two replicas serve on a
	// two-core machine whose server and load generator take about 2 ms of
	// CPU per query from the same cores (TestSimulatorFidelity measures
	// it; at 1.1 the machine, not the policy, decided the violations).
	low, high := max(2, 0.15*capacity), 0.9*capacity
	target := max(80, 20*p99)
	// The trough lasts 20 s: the scale-down came 10 s into it on the
	// 2-core VM. Should it come later on a slower machine, the check
	// below waits for it, at a demand of nothing instead of the trough's.
	schedule := fmt.Sprintf("steps:%.0f@8s,%.0f@20s,%.0f@20s", low, high, low)
	start := time.Now()
	sum, _ := runLoad(t, s, schedule, loadgen.RequirementSet{Model: "convnet", LatencyMs: target}, nil)
	es := eventsOf(t, s)

	up, ok := find(es, start, func(e events.Event) bool {
		return e.Source == "model-autoscaler" && (e.Action == "replicate" || e.Action == "switch")
	})
	if !ok {
		logEvents(t, es)
		t.Fatalf("no scale-up at the peak (%.0f queries/s against %.0f per replica)\n%s", high, capacity, tail(s.log.String(), 60))
	}
	if !strings.Contains(up.Message, "options:") || !strings.Contains(up.Message, "$") || up.Numbers["cost_chosen_per_hour"] <= 0 || up.Numbers["demand_qps"] <= 0 {
		t.Errorf("the scale-up does not show its cost comparison: %s %v", up.Message, up.Numbers)
	}
	var down bool
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, down = find(es, up.Time, func(e events.Event) bool {
			return e.Source == "model-autoscaler" && (e.Action == "unload" || e.Action == "downgrade")
		})
		if down || time.Now().After(deadline) {
			break
		}
		es = eventsOf(t, s)
	}
	logEvents(t, es)
	if !down {
		t.Errorf("no unload or downgrade in the trough, nor in the 20 s after it, after the scale-up at %s", up.Time.Format(time.TimeOnly))
	}
	if sum.Answered < sum.Sent/2 {
		t.Errorf("answered only %d of %d", sum.Answered, sum.Sent)
	}
	if sum.Failed > 0 {
		t.Errorf("%d requests failed: %v", sum.Failed, sum.Statuses)
	}
	if sum.ViolationRate > 0.05 {
		t.Errorf("%.1f%% of the answered queries missed their %.0f ms target; want at most 5%%", 100*sum.ViolationRate, target)
	}
}

// served reads the success counter of every worker from the metrics.
func served(t *testing.T, s *server) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	re := regexp.MustCompile(`(?m)^infaas_inference_request_success\{variant="[^"]*",worker="([^"]+)"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(scrape(t, s), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[1]] += v
	}
	return out
}

func workerIDs(t *testing.T, s *server) []string {
	t.Helper()
	ws, err := s.c.Workers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	return ids
}

// TestClusterAutoscaler: under load one worker cannot carry, the cluster
// autoscaler adds a second, the model autoscaler places a replica on it
// and it serves; when the load falls to a trickle, that worker's replica
// is unloaded and the worker is removed. No request fails on the way.
func TestClusterAutoscaler(t *testing.T) {
	s := startServer(t, t.TempDir(), append([]string{"--workers", "cpu-1", "--max-workers", "2",
		"--worker-idle", "3s", "--worker-interval", "1s"}, autoscaleFlags(t)...)...)
	capacity, p99 := registerConvNet(t, s, "convnet")
	initial := workerIDs(t, s)
	if len(initial) != 1 {
		t.Fatalf("want one worker to start with, got %v", initial)
	}
	target := max(80, 20*p99)
	// The trickle lasts 15 s (the added worker went 15 s into a 30 s one
	// on the 2-core VM); the wait for the removal below covers the rest.
	schedule := fmt.Sprintf("steps:%.0f@25s,2@15s", 1.1*capacity)
	start := time.Now()
	sum, _ := runLoad(t, s, schedule, loadgen.RequirementSet{Model: "convnet", LatencyMs: target}, nil)
	if sum.Failed > 0 {
		t.Errorf("%d requests failed: %v", sum.Failed, sum.Statuses)
	}
	es := eventsOf(t, s)
	logEvents(t, es)
	add, ok := find(es, start, func(e events.Event) bool { return e.Source == "cluster-autoscaler" && e.Action == "add-worker" })
	if !ok {
		t.Fatalf("no worker added under %.0f queries/s against %.0f per replica\n%s", 1.1*capacity, capacity, tail(s.log.String(), 60))
	}
	if add.Class != "cpu-1" || !strings.Contains(add.Message, "short") {
		t.Errorf("the add does not say which class is short: %+v", add)
	}
	rep, ok := find(es, add.Time, func(e events.Event) bool {
		return e.Source == "model-autoscaler" && e.Action == "replicate" && e.Worker != initial[0]
	})
	if !ok {
		t.Fatal("no replica placed on the added worker")
	}
	added := rep.Worker
	if n := served(t, s)[added]; n == 0 {
		t.Errorf("the added worker %s served nothing", added)
	}
	// The trickle left the added worker idle: it goes, the first stays.
	removed := func() bool {
		_, ok := find(eventsOf(t, s), rep.Time, func(e events.Event) bool {
			return e.Source == "cluster-autoscaler" && e.Action == "remove-worker" && e.Worker == added
		})
		return ok && !slices.Contains(workerIDs(t, s), added)
	}
	waitFor(t, "the added worker removed", 30*time.Second, removed)
	if ids := workerIDs(t, s); !slices.Equal(ids, initial) {
		t.Errorf("workers after scale-in: %v, want %v", ids, initial)
	}
}

// hog keeps threads busy on one CPU until stop is closed: a neighbour
// that interferes with a worker pinned there.
func hog(t *testing.T, cpu, threads int) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The hog's thread gets its own affinity back before it returns
			// to the scheduler: a one-CPU thread would pass its pin to the
			// processes forked from it later. It must not end instead
			// (exiting a locked goroutine ends its thread): a child
			// started with Pdeathsig from that thread, as the harness
			// starts servers, would be killed with it.
			runtime.LockOSThread()
			var orig, set unix.CPUSet
			if err := unix.SchedGetaffinity(0, &orig); err != nil {
				runtime.UnlockOSThread()
				t.Errorf("read the hog thread's affinity: %v", err)
				return
			}
			defer func() {
				if err := unix.SchedSetaffinity(0, &orig); err != nil {
					t.Errorf("restore the hog thread's affinity: %v", err)
					return // stays locked: the thread ends with the goroutine
				}
				runtime.UnlockOSThread()
			}()
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				t.Errorf("pin the hog to CPU %d: %v", cpu, err)
				return
			}
			x := 0
			for {
				select {
				case <-done:
					_ = x
					return
				default:
				}
				for i := range 100000 {
					x += i
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// pinnedVariant is the 1-thread variant of arch with the smallest max
// batch profiled on cpu-1.
func pinnedVariant(t *testing.T, s *server, arch string) string {
	t.Helper()
	return pinnedVariantOn(t, s, arch, "cpu-1")
}

// workerCPU reads which CPU the local provider pinned worker id to from
// the server's log.
func workerCPU(t *testing.T, s *server, id string) int {
	t.Helper()
	m := regexp.MustCompile(`msg="started worker" .*\bworker=` + regexp.QuoteMeta(id) + ` .*\bcpus=(\d+) `).FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("no start of %s in the log", id)
	}
	cpu, _ := strconv.Atoi(m[1])
	return cpu
}

// TestInterferenceMitigation: a CPU hog beside the worker that serves the
// traffic makes its replica interfered within seconds; the model
// autoscaler places a replica on the other worker and traffic moves
// there; when the hog stops, the flag clears. (A long scale-down window
// keeps the interfered replica, which the autoscaler would otherwise
// unload first once the new one carries the load.)
func TestInterferenceMitigation(t *testing.T) {
	// Profiles from the default time per batch size: one slow run among
	// the few it allows can inflate the profiled p99 past what the hog
	// does to the tail, but not the median the mean run is judged by.
	// Measured here, not taken from the run's shared cache: the flag
	// compares the hog's slow-down with the profile, and a profile from
	// minutes before carries the host's drift since (0.8–1.3× on the
	// 2-core VM; with a cached one the hogged replica ran 2.6× its
	// profile, under the 3× that flags it).
	s := startServer(t, t.TempDir(), append(append([]string{"--workers", "cpu-1,cpu-1"}, autoscaleArgs...),
		"--scale-down-window", "5m")...)
	capacity, p99 := registerConvNet(t, s, "convnet")
	t.Cleanup(func() {
		if t.Failed() {
			logEvents(t, eventsOf(t, s))
			t.Logf("server log:\n%s", tail(s.log.String(), 200))
		}
	})
	target := max(200, 40*p99)
	// The traffic names one variant: a pinned variant is never switched,
	// so the mitigation is a replica elsewhere whichever variants the
	// profiler kept on this machine (with two, switching away from the
	// interfered replica is cheaper and also right, but then the flag has
	// no replica left to clear on).
	pinned := pinnedVariant(t, s, "convnet")
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan loadgen.Summary, 1)
	go func() {
		sched, _ := loadgen.ParseSchedule(fmt.Sprintf("constant:%.0f:150s", 0.25*capacity))
		sender := loadgen.NewHTTPSender("http://"+s.addr, 32, 2)
		defer sender.Close()
		sum, _, err := loadgen.Run(c, loadgen.Config{Schedule: sched, Seed: 2, Mix: loadgen.Mix{{Weight: 1, Model: pinned, LatencyMs: target}}, Sender: sender})
		if err != nil {
			t.Error(err)
		}
		loadDone <- sum
	}()

	// The one replica the traffic loaded, and its worker.
	var first string
	waitFor(t, "a replica serving", 30*time.Second, func() bool {
		for w, n := range served(t, s) {
			if n > 50 {
				first = w
				return true
			}
		}
		return false
	})
	start := time.Now()
	stop := hog(t, workerCPU(t, s, first), 6)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	// The replica flagged while the hog runs: flagged after it started,
	// or (on a machine busy enough to slow it before) flagged before and
	// not cleared since.
	var flagged events.Event
	took := waitFor(t, "the replica flagged interfered", 30*time.Second, func() bool {
		es := eventsOf(t, s)
		var ok bool
		if flagged, ok = find(es, start, func(e events.Event) bool {
			return e.Source == "monitor" && e.Action == "interfered" && e.Worker == first
		}); ok {
			return true
		}
		for _, e := range es {
			if e.Source == "monitor" && e.Worker == first && e.Time.Before(start) && (e.Action == "interfered" || e.Action == "cleared") {
				flagged, ok = e, e.Action == "interfered"
			}
		}
		return ok
	})
	t.Logf("interfered after %s: %s", took.Round(100*time.Millisecond), flagged.Message)
	// The mitigation: a replica on the other worker, placed because the
	// first is flagged, or — when the autoscaler's step came between the
	// hog's start and the flag — because the first's slowness left its
	// capacity short of the demand (the event's slowness says so).
	var moved events.Event
	waitFor(t, "a replica on the other worker", 30*time.Second, func() bool {
		var ok bool
		moved, ok = find(eventsOf(t, s), start, func(e events.Event) bool {
			return e.Source == "model-autoscaler" && e.Action == "replicate" && e.Worker != first &&
				(e.Reason == "interfered" || e.Numbers["slowness"] >= 2)
		})
		return ok
	})
	t.Logf("mitigated (%s): %s", moved.Reason, moved.Message)
	// Once the new replica serves, most traffic goes to it. (On a
	// two-core machine the monitor may flag it too: the hog's CPU is
	// gone, and the server and the load generator share the other with
	// it. The dispatcher then prefers the replica that runs closer to its
	// profile.)
	waitFor(t, "the new replica serving", 30*time.Second, func() bool { return served(t, s)[moved.Worker] > 20 })
	before := served(t, s)
	time.Sleep(4 * time.Second) // a window of traffic to compare; the assertion is on counts, not time
	after := served(t, s)
	onFirst, onOther := after[first]-before[first], after[moved.Worker]-before[moved.Worker]
	t.Logf("while the hog runs: %.0f on the interfered %s, %.0f on %s", onFirst, first, onOther, moved.Worker)
	if onOther <= onFirst {
		t.Errorf("traffic did not move off the interfered replica: %.0f on %s, %.0f on %s", onFirst, first, onOther, moved.Worker)
	}
	stop()
	stopped = true
	// With the hog gone the replica ends up unflagged: its last monitor
	// event is "cleared". That may have come while the hog still ran —
	// the monitor flags a replica slow under real load, and once the
	// traffic has moved off it serves too little to be judged (a suite
	// run saw it cleared 5 s into the hog and never flagged again) — or
	// after; either way no flag is left standing.
	waitFor(t, "the interference flag cleared", 45*time.Second, func() bool {
		last := ""
		for _, e := range eventsOf(t, s) {
			if e.Source == "monitor" && e.Worker == first && !e.Time.Before(start) {
				last = e.Action
			}
		}
		return last == "cleared"
	})
	cancel()
	sum := <-loadDone
	t.Logf("load: sent %d answered %d refused %d failed %d violations %d", sum.Sent, sum.Answered, sum.Refused, sum.Failed, sum.Violations)
	// The requests still in flight when cancel stopped the load end as
	// "canceled": the test's own doing, not a failure of the system (a
	// suite run had two of 187 then, over the 1 % allowed).
	if failed := sum.Failed - sum.Statuses["canceled"]; failed > sum.Sent/100 {
		t.Errorf("%d of %d requests failed: %v", failed, sum.Sent, sum.Statuses)
	}
}

// TestStrictUnderOverload: strict requests at three times what the one
// replica serves. Every answer met its target by the server's clock (a
// late one is withheld, a queued one whose deadline passed is shed), the
// rest are refused as overload, none fails otherwise, and the server
// counts no unmet requirement: under overload, strict never means a late
// 200.
func TestStrictUnderOverload(t *testing.T) {
	s := startServer(t, t.TempDir(), "--workers", "cpu-1", "--class", "cpu-1", "--profile-cache", sharedProfileCache())
	capacity, p99 := registerConvNet(t, s, "convnet")
	target := math.Round(max(20, 4*p99))
	sum, _ := runLoad(t, s, fmt.Sprintf("constant:%.0f:4s", 3*capacity),
		loadgen.RequirementSet{Weight: 1, Model: "convnet", LatencyMs: target, Strict: true}, nil)
	t.Logf("strict at %.0f ms, %.0f q/s against ~%.0f/s: sent %d, answered %d, refused %d, failed %d; client-side p99 %.1f ms",
		target, 3*capacity, capacity, sum.Sent, sum.Answered, sum.Refused, sum.Failed, sum.P99Ms)
	if sum.Answered == 0 || sum.Refused == 0 {
		t.Fatalf("answered %d, refused %d: the load did not overload the replica, or nothing was served", sum.Answered, sum.Refused)
	}
	if sum.Failed != 0 {
		t.Errorf("%d strict requests failed other than as overload", sum.Failed)
	}
	if unmet := metricSum(t, s, "infaas_requirements_unmet_total"); unmet != 0 {
		t.Errorf("the server answered %.0f requests that missed their requirements", unmet)
	}
	if ok := metricSum(t, s, "infaas_inference_request_success"); ok < float64(sum.Answered) {
		t.Errorf("the server counts %.0f successes, the client %d answers", ok, sum.Answered)
	}
}

// metricSum is the sum of every series of the counter name.
func metricSum(t *testing.T, s *server, name string) float64 {
	t.Helper()
	total := 0.0
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(scrape(t, s), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		total += v
	}
	return total
}

// scrape is the server's /metrics page.
func scrape(t *testing.T, s *server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
