package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/loadgen"
	"github.com/infaas/infaas/sim"
)

// TestSimulatorFidelity is the simulator's check against the live system:
// one fluctuating schedule, live with loadgen against two one-core local
// workers and simulated on the profiles the live registration measured,
// with the same policy, autoscaler windows, worker settings, seed and
// requirement. Throughput and p99 must agree within 15% (p99 within 2 ms
// when small), the violation rate within 15% or 3 points. What the
// simulator cannot know from profiles is measured first, on a separate
// light load: the time a query spends outside the worker (HTTP, JSON, the
// controller, the gRPC hop, and the host's own hiccups: GC pauses,
// scheduling delays, a noisy neighbour) — each answer's latency there less
// the average time the answers spent in the workers, the whole sample
// handed to the simulator — and the CPU the server and the load generator
// take from the cores the workers run on (one machine runs all of it
// here), per query and per second, from that light load and a second,
// heavier one after the schedule; and on the same two loads, how much
// longer the workers' batches take than their profiles say, over what the
// simulator's own batches take there (sim.Config.ComputeScale).
func TestSimulatorFidelity(t *testing.T) {
	live, simr, _ := fidelityRun(t, 10*time.Second, func(capacity float64) string {
		return fmt.Sprintf("steps:%.0f@8s,%.0f@16s,%.0f@8s", 0.15*capacity, 0.9*capacity, 0.15*capacity)
	})
	liveTput := float64(live.Answered) / live.DurationS
	check := func(what string, a, b, absTol float64) {
		if d := math.Abs(a - b); d > max(0.15*max(a, b), absTol) {
			t.Errorf("%s: live %.3f, simulated %.3f: off by %.0f%%", what, a, b, 100*d/max(a, b))
		}
	}
	check("throughput (q/s)", liveTput, simr.ThroughputQPS, 0)
	check("p99 (ms)", live.P99Ms, simr.P99Ms, 2)
	// Rates of a few percent: the live rate alone moved between 1.0% and
	// 4.6% over identical runs of this test on the 2-core VM (the target
	// sits near the p99, where a burst of late answers from one host
	// hiccup swings it; 15% of 2% is 15 answers), so they must agree
	// within 15% or 3 points. With the overhead drawn from the light
	// load's sample they came within 0.6–1.2 points in three runs; from
	// its median alone the simulator missed a CI machine's 3.7% by 3.3.
	// BenchmarkSimulatorFidelity is the full run; there the rate is
	// several percent and still misses 15% (docs/BENCHMARKS.md says by
	// how much and why).
	check("violation rate", live.ViolationRate, simr.ViolationRate, 0.03)
}

// BenchmarkSimulatorFidelity is TestSimulatorFidelity's full run: a
// longer calibration, and a schedule whose peak — one replica's profiled
// capacity — exceeds what one replica serves on this host (its batches
// run 1.2–1.7× their profiles here) but not what two do, so that more of
// the late answers come from queueing while the autoscaler adds a replica
// than from the host's noise. (A peak at 1.4× exceeded what two replicas
// serve beside the server and the load generator on two cores: it
// measured admission on a saturated host, not the autoscaler.) It reports
// the live, simulated and replayed throughput, p99 and violation rate and
// how far apart each is from the live one (docs/BENCHMARKS.md keeps the
// figures).
//
//	go test -run '^$' -bench SimulatorFidelity -benchtime 1x -v ./e2e
func BenchmarkSimulatorFidelity(b *testing.B) {
	for range b.N {
		live, simr, replay := fidelityRun(b, 30*time.Second, func(capacity float64) string {
			return fmt.Sprintf("steps:%.0f@20s,%.0f@30s,%.0f@30s,%.0f@20s", 0.15*capacity, 0.5*capacity, 1.0*capacity, 0.15*capacity)
		})
		liveTput := float64(live.Answered) / live.DurationS
		off := func(a, b float64) float64 { return 100 * math.Abs(a-b) / max(a, b, 1e-9) }
		b.ReportMetric(liveTput, "live-q/s")
		b.ReportMetric(simr.ThroughputQPS, "sim-q/s")
		b.ReportMetric(off(liveTput, simr.ThroughputQPS), "q/s-off-%")
		b.ReportMetric(live.P99Ms, "live-p99-ms")
		b.ReportMetric(simr.P99Ms, "sim-p99-ms")
		b.ReportMetric(off(live.P99Ms, simr.P99Ms), "p99-off-%")
		b.ReportMetric(100*live.ViolationRate, "live-viol-%")
		b.ReportMetric(100*simr.ViolationRate, "sim-viol-%")
		b.ReportMetric(off(live.ViolationRate, simr.ViolationRate), "viol-off-%")
		b.ReportMetric(off(liveTput, replay.ThroughputQPS), "replay-q/s-off-%")
		b.ReportMetric(off(live.P99Ms, replay.P99Ms), "replay-p99-off-%")
		b.ReportMetric(100*replay.ViolationRate, "replay-viol-%")
		b.ReportMetric(off(live.ViolationRate, replay.ViolationRate), "replay-viol-off-%")
	}
}

// fidelityRun runs schedule (made from one replica's capacity) live and
// in simulation, as TestSimulatorFidelity says, after calibrating on a
// light load for calibFor.
func fidelityRun(t testing.TB, calibFor time.Duration, schedule func(capacity float64) string) (live loadgen.Summary, simr, replay *sim.Result) {
	t.Helper()
	s := startServer(t, t.TempDir(), append([]string{"--workers", "cpu-1,cpu-1"}, autoscaleArgs...)...)
	capacity, p99 := registerConvNet(t, s, "convnet")
	target := math.Round(max(60, 15*p99))
	set := loadgen.RequirementSet{Weight: 1, Model: "convnet", LatencyMs: target}

	// Calibrate on a light load of its own: the time outside the worker,
	// and the CPU the server and the load generator spend per query on
	// the cores the workers use too (this machine runs all of it).
	// The CPU per query is the rise over what the two take idle.
	idle0, idleAt := hostCPU(t, s), time.Now()
	time.Sleep(3 * time.Second)
	cpu0, at0 := hostCPU(t, s), time.Now()
	idleRate := float64(cpu0-idle0) / float64(at0.Sub(idleAt))
	before := servedStats(t, s, "convnet")
	_, vs0, err := s.c.Catalog(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{HTTPSender: loadgen.NewHTTPSender("http://"+s.addr, 64, 1)}
	defer rec.Close()
	light := fmt.Sprintf("constant:%.0f:%s", 0.1*capacity, calibFor)
	calib, _ := runLoadVia(t, rec, light, set, nil)
	rate1, busy1 := hostLoad(t, s, calib, cpu0, at0, idleRate)
	hostPerQuery := time.Duration(busy1 / rate1 * float64(time.Second))
	// The time outside the worker is the live median less the time the
	// light load's requests spent in the workers — queued (batching
	// included) and computing — by the server's own statistics: the
	// simulator models those itself, whichever variant served.
	served := inWorker(before, servedStats(t, s, "convnet"))
	// Each answer's time outside the worker is its latency less that
	// average. The sample keeps the host's tail, which on a shared 2-core
	// machine is most of the violations even at light load (a CI run saw
	// 3.9 % of the light load's answers miss a target 15 × the p99); a
	// median and a p99 from ~300 answers swung between runs, the whole
	// sample drawn from keeps its shape. It also holds the in-worker
	// spread at light load, small beside these tails.
	slow1, detail1 := computeSlowdown(before, servedStats(t, s, "convnet"), vs0)
	sample := rec.outside(served)
	overhead := sample[len(sample)/2]
	var sampleMean time.Duration
	for _, d := range sample {
		sampleMean += d / time.Duration(len(sample))
	}
	t.Logf("outside the worker: median %s, p99 %s of %d (live p50 %.2f ms at light load, %s of it in the workers on average; live p99 %.2f ms); server and client CPU per query: %s",
		overhead, sample[len(sample)*99/100], len(sample), calib.P50Ms, served, calib.P99Ms, hostPerQuery)

	sched := schedule(capacity)
	cpu1, at1, st1 := hostCPU(t, s), time.Now(), servedStats(t, s, "convnet")
	live, liveRows := runLoad(t, s, sched, set, nil)
	rateLive, busyLive := hostLoad(t, s, live, cpu1, at1, idleRate)
	stLive := servedStats(t, s, "convnet")
	slowLive, detailLive := computeSlowdown(st1, stLive, vs0)
	mean := time.Duration(live.MeanMs * float64(time.Millisecond))
	t.Logf("under the schedule: mean latency %s, %s of it in the workers (queued and computing), %s outside (light load: %s)",
		mean, inWorker(st1, stLive), mean-inWorker(st1, stLive), time.Duration(calib.MeanMs*float64(time.Millisecond))-served)

	// After the schedule, the host's CPU at a second, higher rate: the CPU
	// per query falls as the rate rises (1.7 ms at 33 q/s, 1.1 ms at
	// 126 q/s here), so one light-load figure overstates the slow-down
	// near capacity. Two rates give the part that grows with the rate
	// and the part that does not (sim.Config.HostCPUBase). Neither comes
	// from the run compared.
	cpu2, at2, st2 := hostCPU(t, s), time.Now(), servedStats(t, s, "convnet")
	heavy := fmt.Sprintf("constant:%.0f:6s", 0.6*capacity)
	high, _ := runLoad(t, s, heavy, set, nil)
	rate2, busy2 := hostLoad(t, s, high, cpu2, at2, idleRate)
	slow2, detail2 := computeSlowdown(st2, servedStats(t, s, "convnet"), vs0)
	t.Logf("in-worker compute over the profile's p50 at the batch sizes served: %.3f at %.0f q/s, %.3f at %.0f q/s, %.3f under the schedule (%.0f q/s)",
		slow1, rate1, slow2, rate2, slowLive, rateLive)
	t.Logf("  light: %s\n  0.6: %s\n  schedule: %s", detail1, detail2, detailLive)
	perQuery, base := (busy2-busy1)/(rate2-rate1), 0.0
	if perQuery > 0 && busy1-perQuery*rate1 > 0 {
		base = busy1 - perQuery*rate1
	} else {
		perQuery = (busy1 + busy2) / (rate1 + rate2)
	}
	hostBase := time.Duration(base * float64(time.Second))
	hostPerQuery = time.Duration(perQuery * float64(time.Second))
	t.Logf("server and client CPU: %.0f ms/s at %.0f q/s, %.0f ms/s at %.0f q/s: %s a query + %s a second; under the schedule %.0f ms/s at %.0f q/s (the fit says %.0f)",
		1000*busy1, rate1, 1000*busy2, rate2, hostPerQuery, hostBase, 1000*busyLive, rateLive, 1000*(base+perQuery*rateLive))

	archs, vs, err := s.c.Catalog(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	models := autoscale.DefaultConfig()
	models.UpWindow, models.DownWindow, models.Cooldown, models.IdleUnload = time.Second, 3*time.Second, 2*time.Second, -1
	setup := sim.Setup{Catalog: sim.Catalog{Architectures: archs, Variants: vs}, Hardware: "local", Workers: []string{"cpu-1", "cpu-1"},
		Mix: loadgen.Mix{set}, Seed: 1, Noise: 1, OverheadSample: sample, HostCPUPerQuery: hostPerQuery, HostCPUBase: hostBase, Models: &models}
	// The workers' own slow-down: their batches' compute time over the
	// profiles' p50s on the two calibration loads, over what the
	// simulator's batches take on the same loads without it (its noise
	// and its share of the host's CPU: the simulator's own rule, not a
	// copy), geometric mean of the two (sim.Config.ComputeScale).
	simSlow := func(load string) float64 {
		c := setup
		c.Workload = load
		rs, err := sim.Compare(c, []string{"infaas"})
		if err != nil {
			t.Fatal(err)
		}
		return max(rs[0].ComputeOverP50, 1e-9)
	}
	sim1, sim2 := simSlow(light), simSlow(heavy)
	computeScale := math.Sqrt(slow1 / sim1 * slow2 / sim2)
	t.Logf("workers' own slow-down: %.3f at %.0f q/s, %.3f at %.0f q/s over the simulator's batches there (%.3f, %.3f): compute scale %.3f",
		slow1/sim1, rate1, slow2/sim2, rate2, sim1, sim2, computeScale)
	setup.Workload, setup.ComputeScale = sched, computeScale
	rs, err := sim.Compare(setup, []string{"infaas"})
	if err != nil {
		t.Fatal(err)
	}
	simr = rs[0]
	// The replay: the same simulation with its batches scaled to take, on
	// average, what the live workers' batches took over this very
	// schedule. It is not a prediction (it reads the run compared); it
	// says how much of the distance between the two is the service time
	// the calibration could not foresee, and how much is the rest of the
	// model — queueing, batching, the policies, the host's tail.
	replaySetup := setup
	replaySetup.ComputeScale = computeScale * slowLive / simr.ComputeOverP50
	rs, err = sim.Compare(replaySetup, []string{"infaas"})
	if err != nil {
		t.Fatal(err)
	}
	replay = rs[0]
	t.Logf("live:   sent %d answered %d refused %d failed %d, %.1f q/s, p50 %.1f ms, p99 %.1f ms, violations %.2f%%, batches %.3f × p50",
		live.Sent, live.Answered, live.Refused, live.Failed, live.ThroughputQPS, live.P50Ms, live.P99Ms, 100*live.ViolationRate, slowLive)
	for _, r := range []struct {
		what string
		r    *sim.Result
	}{{"sim:   ", simr}, {"replay:", replay}} {
		t.Logf("%s sent %d answered %d refused %d failed %d, %.1f q/s, p50 %.1f ms, p99 %.1f ms, violations %.2f%%, batches %.3f × p50, mean %.1f ms (%.1f ms in the workers), actions %v",
			r.what, r.r.Sent, r.r.Answered, r.r.Refused, r.r.Failed, r.r.ThroughputQPS, r.r.P50Ms, r.r.P99Ms, 100*r.r.ViolationRate, r.r.ComputeOverP50,
			r.r.MeanMs, r.r.MeanMs-float64(sampleMean)/1e6, r.r.Actions)
	}
	logWindows(t, liveRows, simr.Series, 10)
	logActions(t, eventsOf(t, s), at1, simr.Events)
	return live, simr, replay
}

// logActions logs the actions taken on their own — every event but the
// monitor's — of the live run (from start on) and of the simulation, each
// at its second of the run: where the two decided differently. (Loads the
// query path starts for a request are not events.)
func logActions(t testing.TB, live []events.Event, start time.Time, simulated []sim.Event) {
	t.Helper()
	var l, m []string
	for _, e := range live {
		if e.Source != "monitor" && !e.Time.Before(start) {
			l = append(l, fmt.Sprintf("%.1fs %s %s %s", e.Time.Sub(start).Seconds(), e.Source, e.Action, e.Variant))
		}
	}
	for _, e := range simulated {
		if e.Source != "monitor" {
			m = append(m, fmt.Sprintf("%.1fs %s %s %s", e.T, e.Source, e.Action, e.Variant))
		}
	}
	t.Logf("actions, live: %s", strings.Join(l, "; "))
	t.Logf("actions, sim:  %s", strings.Join(m, "; "))
}

// logWindows logs, every window seconds of the run, how many queries the
// live run and the simulation answered, answered late and refused: where
// the two part.
func logWindows(t testing.TB, rows []loadgen.Row, series []sim.Sample, window int) {
	t.Helper()
	type counts struct{ answered, late, refused int }
	live, simulated := map[int]*counts{}, map[int]*counts{}
	at := func(m map[int]*counts, w int) *counts {
		if m[w] == nil {
			m[w] = &counts{}
		}
		return m[w]
	}
	last := 0
	for _, r := range rows {
		c := at(live, r.Second/window)
		c.answered, c.late, c.refused = c.answered+r.Answered, c.late+r.Violations, c.refused+r.Refused
		last = max(last, r.Second/window)
	}
	for _, r := range series {
		// A row's T is its end (rows of one second, sim.DefaultConfig):
		// it covers the second before.
		c := at(simulated, max(int(math.Round(r.T))-1, 0)/window)
		c.answered, c.late, c.refused = c.answered+r.Answered, c.late+r.Late, c.refused+r.Refused
	}
	for w := 0; w <= last; w++ {
		l, m := at(live, w), at(simulated, w)
		t.Logf("  %3d–%3d s: live answered %5d late %4d refused %4d | sim answered %5d late %4d refused %4d",
			w*window, (w+1)*window, l.answered, l.late, l.refused, m.answered, m.late, m.refused)
	}
	// How the late answers spread over the seconds that had any, on
	// each side: the share of them in the worst tenth of those seconds.
	// Independent late answers spread evenly; a host that stalls makes
	// many at once.
	var liveLate, simLate []int
	for _, r := range rows {
		if r.Violations > 0 {
			liveLate = append(liveLate, r.Violations)
		}
	}
	for _, r := range series {
		if r.Late > 0 {
			simLate = append(simLate, r.Late)
		}
	}
	t.Logf("late answers: live %s; sim %s", burstiness(liveLate), burstiness(simLate))
}

// burstiness describes per-second counts: how many seconds, the most in
// one, and the share of the total in the worst tenth of the seconds.
func burstiness(perSecond []int) string {
	if len(perSecond) == 0 {
		return "none"
	}
	sorted := slices.Sorted(slices.Values(perSecond))
	slices.Reverse(sorted)
	total, top := 0, 0
	for i, n := range sorted {
		total += n
		if i < max(len(sorted)/10, 1) {
			top += n
		}
	}
	return fmt.Sprintf("%d in %d seconds, at most %d in one, %.0f%% of them in the worst tenth of those seconds",
		total, len(sorted), sorted[0], 100*float64(top)/float64(total))
}

// inWorker is the mean time the queries answered between two readings of
// the server's statistics spent in the workers: queued (batching
// included) and computing.
func inWorker(before, after map[string]inference.ModelStat) time.Duration {
	var n, ns int64
	for name, st := range after {
		b := before[name]
		n += st.InferenceStats.Success.Count - b.InferenceStats.Success.Count
		ns += st.InferenceStats.Queue.Ns + st.InferenceStats.ComputeInfer.Ns - b.InferenceStats.Queue.Ns - b.InferenceStats.ComputeInfer.Ns
	}
	return time.Duration(float64(ns) / float64(max(n, 1)))
}

// computeSlowdown is how much longer the workers' batches took between two
// readings of the server's statistics than the profiles' p50s at the same
// batch sizes: Σ compute time ÷ Σ count × p50, over every variant and
// batch size served (1 when none was); detail gives each variant's batch
// sizes: count, live mean and profiled p50.
func computeSlowdown(before, after map[string]inference.ModelStat, vs []catalog.Variant) (ratio float64, detail string) {
	var live, profiled float64
	var parts []string
	for _, v := range vs {
		prof, ok := v.ProfileOn("cpu-1")
		if !ok {
			prof = v.Profile
		}
		was := map[int]inference.StatDuration{}
		for _, b := range before[v.Name].BatchStats {
			was[b.BatchSize] = b.ComputeInfer
		}
		for _, b := range after[v.Name].BatchStats {
			n := b.ComputeInfer.Count - was[b.BatchSize].Count
			if n <= 0 {
				continue
			}
			ms := float64(b.ComputeInfer.Ns-was[b.BatchSize].Ns) / 1e6
			live += ms
			profiled += float64(n) * prof.P50At(b.BatchSize)
			parts = append(parts, fmt.Sprintf("%s b%d ×%d: %.2f vs %.2f ms", strings.TrimPrefix(v.Name, v.Architecture+"."), b.BatchSize, n, ms/float64(n), prof.P50At(b.BatchSize)))
		}
	}
	if profiled == 0 {
		return 1, ""
	}
	return live / profiled, strings.Join(parts, "; ")
}

// hostCPU is the CPU time used so far by the server process (not its
// worker children) and by this test process (the load generator).
func hostCPU(t testing.TB, s *server) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime is the
	// 14th field of the line, stime the 15th, in clock ticks (100 a second
	// on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return time.Duration(ut+st)*10*time.Millisecond + self
}

// hostLoad is the rate a load ran at (queries sent a second of its
// schedule) and the CPU seconds a second the server and this process
// spent above idle (idleRate) since cpu0 was read at at0.
func hostLoad(t testing.TB, s *server, sum loadgen.Summary, cpu0 time.Duration, at0 time.Time, idleRate float64) (rate, busy float64) {
	t.Helper()
	elapsed := time.Since(at0)
	busy = max(float64(hostCPU(t, s)-cpu0)-idleRate*float64(elapsed), 0) / float64(elapsed)
	return float64(sum.Sent) / max(sum.DurationS, 1e-9), busy
}

// servedStats is the server's statistics of each variant of model.
func servedStats(t testing.TB, s *server, model string) map[string]inference.ModelStat {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + "/v2/models/" + model + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st inference.ModelStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats: HTTP %d, %v", resp.StatusCode, err)
	}
	out := map[string]inference.ModelStat{}
	for _, m := range st.ModelStats {
		out[m.Name] = m
	}
	return out
}

// recorder is a loadgen.Sender that keeps the latency of every answered
// request, as the generator measures it (the call to Send).
type recorder struct {
	*loadgen.HTTPSender
	mu  sync.Mutex
	lat []time.Duration
}

func (r *recorder) Send(c context.Context, p *loadgen.Prepared) loadgen.Outcome {
	start := time.Now()
	o := r.HTTPSender.Send(c, p)
	if o.Result == loadgen.Answered {
		d := time.Since(start)
		r.mu.Lock()
		r.lat = append(r.lat, d)
		r.mu.Unlock()
	}
	return o
}

// outside is the recorded latencies less inWorker, at least 0, sorted.
func (r *recorder) outside(inWorker time.Duration) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, 0, len(r.lat)+1)
	for _, d := range r.lat {
		out = append(out, max(d-inWorker, 0))
	}
	if len(out) == 0 {
		out = append(out, 0)
	}
	slices.Sort(out)
	return out
}
