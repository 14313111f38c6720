package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
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
	"github.com/infaas/infaas/worker"
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
// the time its request spent in the worker, as its answer says, the whole
// sample handed to the simulator — and the CPU the server and the load generator
// take from the cores the workers run on (one machine runs all of it
// here), per query and per second, from that light load and a second,
// heavier one after the schedule; and on the same two loads, how much
// longer the workers' batches take than their profiles say, over what the
// simulator's own batches take there (sim.Config.ComputeScale), and the
// shape of those batches' times, which the simulated batches are drawn
// from (sim.Config.ServiceShape). The simulation starts from the replicas
// the live server has loaded then, and its prediction is the mean over
// 20 seeds (one live run is one draw).
func TestSimulatorFidelity(t *testing.T) {
	// One short live run is one draw of a noisy host: a stall (the VM
	// descheduled, a neighbour's burst) makes dozens of late answers in
	// one second, which sets a 32-second run's p99 (hostStall says when),
	// and the workers' speeds drift and differ between them, which the
	// simulator's one level per run cannot follow (docs/BENCHMARKS.md,
	// fourth session of 2026-12-06: two misses of ~18 % on p99 in six
	// runs that day, one each way). A miss is run once more, on a fresh
	// server; a second miss fails.
	for attempt := 1; ; attempt++ {
		live, _, seeds, stall := fidelityRun(t, 10*time.Second, 15, func(capacity float64) string {
			return fmt.Sprintf("steps:%.0f@8s,%.0f@16s,%.0f@8s", 0.15*capacity, 0.9*capacity, 0.15*capacity)
		})
		liveTput := float64(live.Answered) / live.DurationS
		simr := seeds.mean
		var misses []string
		check := func(what string, a, b, absTol float64) {
			if d := math.Abs(a - b); d > max(0.15*max(a, b), absTol) {
				misses = append(misses, fmt.Sprintf("%s: live %.3f, simulated %.3f: off by %.0f%%", what, a, b, 100*d/max(a, b)))
			}
		}
		check("throughput (q/s)", liveTput, simr.ThroughputQPS, 0)
		check("p99 (ms)", live.P99Ms, simr.P99Ms, 2)
		// Rates of a few percent: the live rate alone moved between 1.0%
		// and 4.6% over identical runs of this test on the 2-core VM (the
		// target sits near the p99, where a burst of late answers from
		// one host hiccup swings it; 15% of 2% is 15 answers), so they
		// must agree within 15% or 3 points. With the overhead drawn from
		// the light load's sample they came within 0.6–1.2 points in
		// three runs; from its median alone the simulator missed a CI
		// machine's 3.7% by 3.3. BenchmarkSimulatorFidelity is the full
		// run; there the rate is several percent and still misses 15%
		// (docs/BENCHMARKS.md says by how much and why).
		check("violation rate", live.ViolationRate, simr.ViolationRate, 0.03)
		switch {
		case len(misses) == 0:
			return
		case attempt == 1:
			if stall != "" {
				stall = " during a host stall (" + stall + ")"
			}
			t.Logf("attempt 1 missed%s: %s; once more", stall, strings.Join(misses, "; "))
			continue
		}
		for _, m := range misses {
			t.Error(m)
		}
		return
	}
}

// BenchmarkSimulatorFidelity is TestSimulatorFidelity's full run: a
// longer calibration, a tighter target (fidelityTarget), and a schedule
// whose peak — one replica's profiled
// capacity — exceeds what one replica serves on this host (its batches
// run 1.2–1.7× their profiles here) but not what two do, so that more of
// the late answers come from queueing while the autoscaler adds a replica
// than from the host's noise. (A peak at 1.4× exceeded what two replicas
// serve beside the server and the load generator on two cores: it
// measured admission on a saturated host, not the autoscaler.)
//
// It runs the schedule live fidelityLiveRuns times (INFAAS_FIDELITY_RUNS
// sets another number, for a pool with more power), each on a fresh
// server and predicted from its own calibration, and compares each run
// and all of them pooled: one live run is one draw, and its violation
// rate moves more from run to run than the simulator misses by — sets
// of three back-to-back runs of this benchmark answered 1.39, 1.16 and
// 2.18 % late, and 0.79, 0.82 and 2.96 % (docs/BENCHMARKS.md, sixth
// session of 2026-12-06). The pooled
// figures set the verdict: the live mean throughput, the mean of the
// runs' p99s, and late answers over all answered (the prediction's
// rates weighted by each run's answers). It reports the pooled live,
// simulated and replayed figures (at the live run's mean level, and at its
// level in each 5 s), how far apart each is from the live one, and the
// live runs' own spread (docs/BENCHMARKS.md keeps them).
//
//	go test -run '^$' -bench SimulatorFidelity -benchtime 1x -timeout 30m -v ./e2e
//
// (about 3 minutes a live run on the 2-core VM; give -timeout room for
// more runs.)
func BenchmarkSimulatorFidelity(b *testing.B) {
	liveRuns := fidelityLiveRuns
	if v := os.Getenv("INFAAS_FIDELITY_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("INFAAS_FIDELITY_RUNS=%q: want a whole number of live runs, at least 2", v)
		}
		liveRuns = n
	}
	target := fidelityTarget(b)
	for range b.N {
		var live, pred, replay, traced pooled
		var runs []fidelityPair
		for run := 1; run <= liveRuns; run++ {
			l, rp, seeds, stall := fidelityRun(b, 30*time.Second, target, func(capacity float64) string {
				return fmt.Sprintf("steps:%.0f@20s,%.0f@30s,%.0f@30s,%.0f@20s", 0.15*capacity, 0.5*capacity, 1.0*capacity, 0.15*capacity)
			})
			lt := float64(l.Answered) / l.DurationS
			live.add(lt, l.P99Ms, l.ViolationRate, l.Answered)
			pred.add(seeds.mean.ThroughputQPS, seeds.mean.P99Ms, seeds.mean.ViolationRate, l.Answered)
			replay.add(rp.level.ThroughputQPS, rp.level.P99Ms, rp.level.ViolationRate, l.Answered)
			traced.add(rp.traced.ThroughputQPS, rp.traced.P99Ms, rp.traced.ViolationRate, l.Answered)
			runs = append(runs, fidelityPair{live: figures{lt, l.P99Ms, l.ViolationRate, float64(l.Answered)},
				sim: figures{seeds.mean.ThroughputQPS, seeds.mean.P99Ms, seeds.mean.ViolationRate, float64(l.Answered)}})
			if stall != "" {
				stall = "; a host stall: " + stall
			}
			b.Logf("run %d: q/s live %.1f / sim %.1f (%.1f%% off), p99 ms %.1f / %.1f (%.1f%%), violations %.2f / %.2f %% (%.0f%%); live above %.0f%% of the seeds' rates%s",
				run, lt, seeds.mean.ThroughputQPS, off(lt, seeds.mean.ThroughputQPS), l.P99Ms, seeds.mean.P99Ms, off(l.P99Ms, seeds.mean.P99Ms),
				100*l.ViolationRate, 100*seeds.mean.ViolationRate, off(l.ViolationRate, seeds.mean.ViolationRate),
				100*seeds.rank(l.ViolationRate, func(r *sim.Result) float64 { return r.ViolationRate }), stall)
		}
		lq, lp, lv := live.means()
		sq, sp, sv := pred.means()
		rq, rp, rv := replay.means()
		tq, tp, tv := traced.means()
		b.Logf("replayed at the host's speed per 5 s, pooled: q/s %.1f (%.1f%% off), p99 ms %.1f (%.1f%%), violations %.2f %% (%.1f%%)",
			tq, off(lq, tq), tp, off(lp, tp), 100*tv, off(lv, tv))
		b.Logf("pooled over %d live runs: q/s %.1f / %.1f (%.1f%% off), p99 ms %.1f / %.1f (%.1f%%), violations %.2f / %.2f %% (%.1f%%); the live runs' own violation rates %s",
			liveRuns, lq, sq, off(lq, sq), lp, sp, off(lp, sp), 100*lv, 100*sv, off(lv, sv), live.rates())
		self, bySim := selfPrediction(runs)
		b.Logf("each run predicted by the other live runs (their mean; rates pooled) and by the simulator, mean distance over the runs: q/s %.1f%% / %.1f%%, p99 %.1f%% / %.1f%%, violations %.1f%% / %.1f%%",
			self.qps, bySim.qps, self.p99, bySim.p99, self.rate, bySim.rate)
		b.ReportMetric(self.rate, "self-viol-off-%")
		b.ReportMetric(bySim.rate, "run-viol-off-%")
		b.ReportMetric(self.p99, "self-p99-off-%")
		b.ReportMetric(bySim.p99, "run-p99-off-%")
		b.ReportMetric(lq, "live-q/s")
		b.ReportMetric(sq, "sim-q/s")
		b.ReportMetric(off(lq, sq), "q/s-off-%")
		b.ReportMetric(lp, "live-p99-ms")
		b.ReportMetric(sp, "sim-p99-ms")
		b.ReportMetric(off(lp, sp), "p99-off-%")
		b.ReportMetric(100*lv, "live-viol-%")
		b.ReportMetric(100*sv, "sim-viol-%")
		b.ReportMetric(off(lv, sv), "viol-off-%")
		b.ReportMetric(live.rateSpread(), "live-viol-spread-%")
		b.ReportMetric(off(lq, rq), "replay-q/s-off-%")
		b.ReportMetric(off(lp, rp), "replay-p99-off-%")
		b.ReportMetric(100*rv, "replay-viol-%")
		b.ReportMetric(off(lv, rv), "replay-viol-off-%")
		b.ReportMetric(off(lp, tp), "traced-p99-off-%")
		b.ReportMetric(100*tv, "traced-viol-%")
		b.ReportMetric(off(lv, tv), "traced-viol-off-%")
	}
}

// figures are one run's throughput, p99 and violation rate, and how many
// queries it answered (the weight of its rate when rates are pooled).
type figures struct{ qps, p99, rate, answered float64 }

// fidelityPair is one live run and the simulator's prediction of it.
type fidelityPair struct{ live, sim figures }

// selfPrediction is the yardstick for the simulator's error: how far, on
// average over the runs, each live run is from the other live runs of the
// same schedule (their mean throughput and p99, their rates pooled by
// answers) — how well the live system predicts itself — beside how far it
// is from the simulator's prediction of it. A simulator whose distance is
// within the live system's own predicts a run as well as another run
// does; one far beyond it is wrong.
func selfPrediction(runs []fidelityPair) (self, bySim figures) {
	if len(runs) < 2 {
		return figures{}, figures{}
	}
	n := float64(len(runs))
	for i, r := range runs {
		var others pooled
		for j, o := range runs {
			if j != i {
				others.add(o.live.qps, o.live.p99, o.live.rate, int(o.live.answered))
			}
		}
		q, p, v := others.means()
		self.qps += off(r.live.qps, q) / n
		self.p99 += off(r.live.p99, p) / n
		self.rate += off(r.live.rate, v) / n
		bySim.qps += off(r.live.qps, r.sim.qps) / n
		bySim.p99 += off(r.live.p99, r.sim.p99) / n
		bySim.rate += off(r.live.rate, r.sim.rate) / n
	}
	return self, bySim
}

// fidelityLiveRuns is how many live runs BenchmarkSimulatorFidelity pools
// by default.
const fidelityLiveRuns = 3

// fidelityTarget is the latency target of BenchmarkSimulatorFidelity's
// runs as a multiple of the least p99 at batch 1: 6, or what
// INFAAS_FIDELITY_TARGET says. At the short test's 15 × the p99, the full
// run's schedule answered almost nothing late on this host (24 answers of
// 13,000 over four runs on 2026-12-07, none in two of them), so its
// violation rate was a count of a few host stalls; at 6 × it was 190 of
// 27,000 over eight runs, most of them from the queues at the peak, which
// is what the simulator is checked on (docs/BENCHMARKS.md, 2026-12-07).
func fidelityTarget(t testing.TB) float64 {
	v := os.Getenv("INFAAS_FIDELITY_TARGET")
	if v == "" {
		return 6
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || !(x >= 1 && x <= 1000) {
		t.Fatalf("INFAAS_FIDELITY_TARGET=%q: want the target as a multiple of the least p99 at batch 1, 1 to 1000", v)
	}
	return x
}

// off is how far apart a and b are, in percent of the larger.
func off(a, b float64) float64 { return 100 * math.Abs(a-b) / max(a, b, 1e-9) }

// pooled gathers runs' throughputs, p99s and violation rates, the rates
// weighted by the live run's answers.
type pooled struct {
	qps, p99, late, answered float64
	rateList                 []float64
}

func (p *pooled) add(qps, p99, rate float64, answered int) {
	p.qps += qps
	p.p99 += p99
	p.late += rate * float64(answered)
	p.answered += float64(answered)
	p.rateList = append(p.rateList, rate)
}

// means are the mean throughput and p99 and the pooled violation rate.
func (p *pooled) means() (qps, p99, rate float64) {
	n := float64(max(len(p.rateList), 1))
	return p.qps / n, p.p99 / n, p.late / max(p.answered, 1)
}

// rates lists the runs' violation rates in percent.
func (p *pooled) rates() string {
	parts := make([]string, len(p.rateList))
	for i, r := range p.rateList {
		parts[i] = fmt.Sprintf("%.2f %%", 100*r)
	}
	return strings.Join(parts, ", ")
}

// rateSpread is how far apart the runs' highest and lowest violation
// rates are, in percent of the highest.
func (p *pooled) rateSpread() float64 {
	if len(p.rateList) == 0 {
		return 0
	}
	return off(slices.Max(p.rateList), slices.Min(p.rateList))
}

// fidelityRun runs schedule (made from one replica's capacity) live and
// in simulation, as TestSimulatorFidelity says, after calibrating on a
// light load for calibFor, with a latency target of targetP99 × the least
// p99 at batch 1 (at least 60 ms). stall describes a host stall during
// the live schedule (hostStall), "" for none. It stops its server before
// it returns.
func fidelityRun(t testing.TB, calibFor time.Duration, targetP99 float64, schedule func(capacity float64) string) (live loadgen.Summary, replays replayed, seeds seedRuns, stall string) {
	t.Helper()
	dumpRun++
	s := startServer(t, t.TempDir(), append([]string{"--workers", "cpu-1,cpu-1"}, autoscaleFlags(t)...)...)
	defer s.kill()
	capacity, p99 := registerConvNet(t, s, "convnet")
	target := math.Round(max(60, targetP99*p99))
	set := loadgen.RequirementSet{Weight: 1, Model: "convnet", LatencyMs: target}

	// Calibrate on a light load of its own: the time outside the worker,
	// and the CPU the server and the load generator spend per query on
	// the cores the workers use too (this machine runs all of it).
	// The CPU per query is the rise over what the two take idle.
	idle := hostCPU(t, s)
	time.Sleep(3 * time.Second)
	cpu0 := hostCPU(t, s)
	idleRate, _ := idle.rates(cpu0)
	before := servedStats(t, s, "convnet")
	_, vs0, err := s.c.Catalog(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	dump(t, "variants", vs0)
	rec := newRecorder(s)
	defer rec.Close()
	light := fmt.Sprintf("constant:%.0f:%s", 0.1*capacity, calibFor)
	calib, _ := runLoadVia(t, rec, light, set, nil)
	cpuLight := hostLoad(t, s, calib, cpu0, idleRate)
	rate1, busy1 := cpuLight.rate, cpuLight.busy
	hostPerQuery := time.Duration(busy1 / rate1 * float64(time.Second))
	// The time outside the worker is the live median less the time the
	// light load's requests spent in the workers — queued (batching
	// included) and computing — by the server's own statistics: the
	// simulator models those itself, whichever variant served.
	served := inWorker(before, servedStats(t, s, "convnet"))
	// Each answer's time outside the worker is its latency less its own
	// time in the worker (outside says why not less that average). The
	// sample keeps the host's tail, which on a shared 2-core
	// machine is most of the violations even at light load (a CI run saw
	// 3.9 % of the light load's answers miss a target 15 × the p99); a
	// median and a p99 from ~300 answers swung between runs, the whole
	// sample drawn from keeps its shape.
	slow1, detail1 := computeSlowdown(before, servedStats(t, s, "convnet"), vs0)
	calibAnswers, _ := rec.take()
	dump(t, "light", calibAnswers)
	sample := outside(calibAnswers, served)
	overhead := sample[len(sample)/2]
	var sampleMean time.Duration
	for _, d := range sample {
		sampleMean += d / time.Duration(len(sample))
	}
	t.Logf("outside the worker: median %s, p99 %s of %d (live p50 %.2f ms at light load, %s of it in the workers on average; live p99 %.2f ms); server and client CPU per query: %s",
		overhead, sample[len(sample)*99/100], len(sample), calib.P50Ms, served, calib.P99Ms, hostPerQuery)

	sched := schedule(capacity)
	// The simulation starts where the live run does: with the replicas
	// the calibration left loaded (the interference detector may have
	// moved the light load to another variant on the other worker).
	loaded := replicasLoaded(t, s)
	cpu1, st1 := hostCPU(t, s), servedStats(t, s, "convnet")
	at1 := cpu1.at
	schedAt := time.Since(rec.start) // the schedule's start on the answers' clock
	live, liveRows := runLoadVia(t, rec, sched, set, nil)
	scheduleAnswers, refusedWhy := rec.take()
	dump(t, "schedule", scheduleAnswers)
	cpuLive := hostLoad(t, s, live, cpu1, idleRate)
	rateLive, busyLive := cpuLive.rate, cpuLive.busy
	stLive := servedStats(t, s, "convnet")
	slowLive, detailLive := computeSlowdown(st1, stLive, vs0)
	mean := time.Duration(live.MeanMs * float64(time.Millisecond))
	t.Logf("under the schedule: mean latency %s, %s of it in the workers (queued and computing), %s outside (light load: %s)",
		mean, inWorker(st1, stLive), mean-inWorker(st1, stLive), time.Duration(calib.MeanMs*float64(time.Millisecond))-served)

	// After the schedule, the host at a second, higher rate: the CPU per
	// query falls as the rate rises (1.7 ms at 33 q/s, 1.1 ms at 126 q/s
	// here), so one light-load figure overstates the slow-down near
	// capacity; two rates give the part that grows with the rate and the
	// part that does not (sim.Config.HostCPUBase). Neither comes from the
	// run compared. (At the peak's own rate it measured overload: one
	// replica refusing until the autoscaler added the second.)
	loaded2 := replicasLoaded(t, s)
	cpu2, st2 := hostCPU(t, s), servedStats(t, s, "convnet")
	heavy := fmt.Sprintf("constant:%.0f:%s", 0.6*capacity, max(10*time.Second, calibFor/2))
	high, _ := runLoadVia(t, rec, heavy, set, nil)
	heavyAnswers, _ := rec.take()
	dump(t, "heavy", heavyAnswers)
	cpuHeavy := hostLoad(t, s, high, cpu2, idleRate)
	rate2, busy2 := cpuHeavy.rate, cpuHeavy.busy
	slow2, detail2 := computeSlowdown(st2, servedStats(t, s, "convnet"), vs0)
	t.Logf("in-worker compute over the profile's p50 at the batch sizes served: %.3f at %.0f q/s, %.3f at %.0f q/s, %.3f under the schedule (%.0f q/s)",
		slow1, rate1, slow2, rate2, slowLive, rateLive)
	t.Logf("  light: %s\n  0.6: %s\n  schedule: %s", detail1, detail2, detailLive)
	t.Logf("  by worker: light: %s\n  0.6: %s\n  schedule: %s",
		perWorker(calibAnswers, vs0, time.Duration(calib.DurationS*float64(time.Second))),
		perWorker(heavyAnswers, vs0, time.Duration(high.DurationS*float64(time.Second))),
		perWorker(scheduleAnswers, vs0, time.Duration(live.DurationS*float64(time.Second))))
	perQuery, base := (busy2-busy1)/(rate2-rate1), 0.0
	if perQuery > 0 && busy1-perQuery*rate1 > 0 {
		base = busy1 - perQuery*rate1
	} else {
		perQuery = (busy1 + busy2) / (rate1 + rate2)
	}
	hostBase := time.Duration(base * float64(time.Second))
	hostPerQuery = time.Duration(perQuery * float64(time.Second))
	t.Logf("server and client CPU: %.0f ms/s at %.0f q/s, %.0f ms/s at %.0f q/s: %s a query + %s a second; under the schedule %.0f ms/s at %.0f q/s (the fit says %.0f); stolen by the hypervisor: %.0f, %.0f and %.0f ms/s",
		1000*busy1, rate1, 1000*busy2, rate2, hostPerQuery, hostBase, 1000*busyLive, rateLive, 1000*(base+perQuery*rateLive),
		1000*cpuLight.steal, 1000*cpuHeavy.steal, 1000*cpuLive.steal)

	archs, vs, err := s.c.Catalog(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	models := autoscale.DefaultConfig()
	models.UpWindow, models.DownWindow, models.Cooldown, models.IdleUnload = time.Second, 3*time.Second, 2*time.Second, -1
	// The spread of the batches' times, from both calibration loads, in
	// the order they ran: a shared 2-core host gives the workers a tail
	// their profiles, measured alone, do not have (batches 3–5 × their
	// p50 at light load), and its slow stretches last (the batches' times
	// correlate at 0.2–0.4 over dozens of batches). The prediction draws
	// its batches' times from it, in blocks of ~50 batches
	// (sim.Config.ServiceShape, ServiceShapeBlock): with the profiles'
	// spread instead (a 5 % body and a 2 % tail) the simulator answered
	// too few late in every pool of three full runs, by 18–57 %
	// (docs/BENCHMARKS.md, sixth session of 2026-12-06). The profiles'
	// spread is logged beside, as the alternative. (An earlier verdict
	// against the shape — the p99 12–25 % high — was made on a sample
	// that kept the rare batch times and dropped the common ones.)
	// Each load's batches over their own mean: the level moves between
	// loads minutes apart (one run's 0.6 load ran 2.07× its p50s where the
	// light load and the schedule ran 1.39×), and pooled as they came, a
	// moved level turned into spread — a tail the schedule never had. The
	// level is the compute scale's; the shape keeps what varies within a
	// load.
	shape := append(relative(serviceShape(calibAnswers, vs0)), relative(serviceShape(heavyAnswers, vs0))...)
	t.Logf("batch time over its load's mean, %d batches of the calibration loads: %s", len(shape), quantiles(shape))
	spread := sim.Setup{Catalog: sim.Catalog{Architectures: archs, Variants: vs}, Hardware: "local", Workers: []string{"cpu-1", "cpu-1"},
		Mix: loadgen.Mix{set}, Seed: 1, Noise: 1, OverheadSample: sample, HostCPUPerQuery: hostPerQuery, HostCPUBase: hostBase, Models: &models}
	// The workers' own slow-down: their batches' compute time over the
	// profiles' p50s on the two calibration loads, over what the
	// simulator's batches take on the same loads, from the same replicas,
	// without it (its noise and its share of the host's CPU: the
	// simulator's own rule, not a copy), geometric mean of the two
	// (sim.Config.ComputeScale). The light load's batches start on a host
	// that sat idle (20–40 % slower on the AMD hosts, a regime the
	// simulator does not model), so the 0.6 load's level alone is the
	// alternative, logged beside: over the 54 full runs on record the
	// schedule ran 2.8 % below the mean's level on average and 1.5 % above
	// the 0.6 load's (root mean square 11.4 and 10.7 %), but on the tenth
	// session's host the mean was the nearer (12 runs; paired, it
	// predicted the pooled violation rate within 9 %, the 0.6 load's
	// level within 24 %; docs/BENCHMARKS.md).
	// Over seeds: a calibration load is short, and one seed's few hundred
	// batches stray from the mean (by ±10 % drawn from a measured shape
	// in blocks).
	calibrate := func(s sim.Setup) (calibrated sim.Setup, sim1, sim2 float64) {
		slow := func(load string, provision map[string]int) float64 {
			c := s
			c.Workload, c.Provision = load, provision
			return max(simulateSeeds(t, c, fidelitySeeds).mean.ComputeOverP50, 1e-9)
		}
		sim1, sim2 = slow(light, nil), slow(heavy, loaded2)
		s.ComputeScale = math.Sqrt(slow1 / sim1 * slow2 / sim2)
		s.Workload, s.Provision = sched, loaded
		return s, sim1, sim2
	}
	shaped := spread
	shaped.ServiceShape, shaped.ServiceShapeBlock = shape, 50
	setup, sim1, sim2 := calibrate(shaped)
	computeScale := setup.ComputeScale
	t.Logf("workers' own slow-down: %.3f at %.0f q/s, %.3f at %.0f q/s over the simulator's batches there (%.3f, %.3f): compute scale %.3f",
		slow1/sim1, rate1, slow2/sim2, rate2, sim1, sim2, computeScale)
	dump(t, "setup", setup) // the prediction's sim.Setup, seed 1: rerun it to study a decision
	rs, err := sim.Compare(setup, []string{"infaas"})
	if err != nil {
		t.Fatal(err)
	}
	simr := rs[0] // seed 1: its windows and actions are logged
	// One simulation is one draw of the batches' times, the answers' time
	// outside the workers and the arrivals; the live run is one draw too.
	// The prediction is the simulation over many seeds: its mean, and the
	// range one run may land in.
	seeds = simulateSeeds(t, setup, fidelitySeeds)
	for _, m := range []struct {
		what string
		live float64
		of   func(*sim.Result) float64
	}{
		{"throughput (q/s)", float64(live.Answered) / live.DurationS, func(r *sim.Result) float64 { return r.ThroughputQPS }},
		{"p99 (ms)", live.P99Ms, func(r *sim.Result) float64 { return r.P99Ms }},
		{"violation rate (%)", 100 * live.ViolationRate, func(r *sim.Result) float64 { return 100 * r.ViolationRate }},
	} {
		t.Logf("%s: live %.2f; simulated over %d seeds: mean %.2f, %s; live above %.0f%% of them",
			m.what, m.live, len(seeds.runs), m.of(seeds.mean), seeds.spread(m.of), 100*seeds.rank(m.live, m.of))
	}
	// The other level: the 0.6 load's alone (see calibrate).
	atHeavy := setup
	atHeavy.ComputeScale = slow2 / sim2
	h := simulateSeeds(t, atHeavy, fidelitySeeds)
	t.Logf("at the 0.6 load's level instead: throughput %.2f q/s, p99 %.2f ms, violations %.2f%% (mean over seeds; compute scale %.3f)",
		h.mean.ThroughputQPS, h.mean.P99Ms, 100*h.mean.ViolationRate, atHeavy.ComputeScale)
	// The alternative: the profiles' spread instead of the measured
	// shape, with the compute scale calibrated for it the same way.
	alt, _, _ := calibrate(spread)
	r := simulateSeeds(t, alt, fidelitySeeds)
	t.Logf("with the profiles' spread: throughput %.2f q/s, p99 %.2f ms, violations %.2f%%, batches %.3f × p50 (mean over seeds; compute scale %.3f)",
		r.mean.ThroughputQPS, r.mean.P99Ms, 100*r.mean.ViolationRate, r.mean.ComputeOverP50, alt.ComputeScale)
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
	replays.level = rs[0]
	// The replay at the host's speed as it went: the live batches' level
	// over their p50s in each 5 s of the schedule, both workers pooled, as
	// interference windows on both, with the host's CPU model off (the
	// measured level already holds what the server and the load generator
	// took from the workers). Not a prediction either: given the host's
	// speed second by second, do the simulation's queueing, batching and
	// policies reproduce the run? Over seeds, as the prediction.
	traced := setup
	traced.HostCPUPerQuery, traced.HostCPUBase = 0, 0
	traced.ComputeScale, traced.Interference = hostSpeedTrace(scheduleAnswers, vs0, schedAt, 5*time.Second, len(setup.Workers))
	tr := simulateSeeds(t, traced, fidelitySeeds)
	replays.traced = tr.mean
	t.Logf("replayed at the host's speed per 5 s (level %.3f × %s): throughput %.2f q/s, p99 %.2f ms, violations %.2f%%, batches %.3f × p50 (live %.3f); live above %.0f%% of the seeds' rates",
		traced.ComputeScale, traceFactors(traced.Interference), tr.mean.ThroughputQPS, tr.mean.P99Ms, 100*tr.mean.ViolationRate, tr.mean.ComputeOverP50, slowLive,
		100*tr.rank(live.ViolationRate, func(r *sim.Result) float64 { return r.ViolationRate }))
	t.Logf("live:   sent %d answered %d refused %d failed %d, %.1f q/s, p50 %.1f ms, p99 %.1f ms, violations %.2f%%, batches %.3f × p50; refused %v",
		live.Sent, live.Answered, live.Refused, live.Failed, live.ThroughputQPS, live.P50Ms, live.P99Ms, 100*live.ViolationRate, slowLive, refusedWhy)
	for _, r := range []struct {
		what string
		r    *sim.Result
	}{{"sim:   ", simr}, {"replay:", replays.level}} {
		t.Logf("%s sent %d answered %d refused %d failed %d, %.1f q/s, p50 %.1f ms, p99 %.1f ms, violations %.2f%%, batches %.3f × p50, mean %.1f ms (%.1f ms in the workers), actions %v; refused %v",
			r.what, r.r.Sent, r.r.Answered, r.r.Refused, r.r.Failed, r.r.ThroughputQPS, r.r.P50Ms, r.r.P99Ms, 100*r.r.ViolationRate, r.r.ComputeOverP50,
			r.r.MeanMs, r.r.MeanMs-float64(sampleMean)/1e6, r.r.Actions, r.r.RefusedWhy)
	}
	logWindows(t, liveRows, simr.Series, 10)
	logLateSeconds(t, liveRows, simr.Series)
	t.Logf("loads, live: %s; profiled load times: %s", readyLines(s.log.String(), at1), loadTimes(vs))
	es := eventsOf(t, s)
	dump(t, "events", es)
	logActions(t, es, at1, simr.Events)
	return live, replays, seeds, hostStall(liveRows)
}

// replayed are a fidelity run's replays, which read the live run compared
// (not predictions): at the live batches' mean level over the schedule
// (seed 1), and at their level in each 5 s of it (the mean over seeds).
type replayed struct{ level, traced *sim.Result }

// hostSpeedTrace is the host's speed over a schedule as the workers' batches
// measured it: each window's batches' compute time over their profiles'
// p50s (batches placed by when their first answer was sent, less from, the
// schedule's start on the answers' clock), as a level — the least window's
// — and, for each window above it and each of workers, an interference
// factor of the window's level over it. A window without batches keeps
// the level of the one before.
func hostSpeedTrace(answers []answer, vs []catalog.Variant, from, window time.Duration, workers int) (level float64, slow []sim.Interference) {
	type sums struct{ live, p50 float64 }
	var ws []sums
	for _, b := range batchesOf(answers, vs) {
		at := b.at - from
		if at < 0 {
			continue
		}
		i := int(at / window)
		for len(ws) <= i {
			ws = append(ws, sums{})
		}
		ws[i].live += b.ms
		ws[i].p50 += b.p50
	}
	levels := make([]float64, len(ws))
	level = math.Inf(1)
	for i, w := range ws {
		switch {
		case w.p50 > 0:
			levels[i] = w.live / w.p50
		case i > 0:
			levels[i] = levels[i-1]
		default:
			levels[i] = 1
		}
		level = min(level, levels[i])
	}
	if len(levels) == 0 {
		return 1, nil
	}
	for i, l := range levels {
		if f := l / level; f > 1 {
			for w := range workers {
				slow = append(slow, sim.Interference{Worker: w, At: time.Duration(i) * window, For: window, Factor: f})
			}
		}
	}
	return level, slow
}

// traceFactors lists a trace's factors on its first worker, in order, for
// a log line.
func traceFactors(slow []sim.Interference) string {
	var b strings.Builder
	b.WriteString("[")
	for _, in := range slow {
		if in.Worker == 0 {
			fmt.Fprintf(&b, " %.0fs:%.2f", in.At.Seconds(), in.Factor)
		}
	}
	b.WriteString(" ]")
	return b.String()
}

// hostStall describes a stall of the host in a live run: most of its late
// answers (at least 10, and over half of them) in one second. Late
// answers that come from queueing and the service times' spread fall over
// the seconds of the peak: in the runs of 2026-12-06 the worst second
// held 10–40 % of them, live or simulated; the run that first showed a
// stall had 42 of its 61 in one second and the rest in the next. A stall
// of the whole host makes every query in flight late at once.
func hostStall(rows []loadgen.Row) string {
	total, worst, at := 0, 0, 0
	for _, r := range rows {
		total += r.Violations
		if r.Violations > worst {
			worst, at = r.Violations, r.Second
		}
	}
	if worst < 10 || 2*worst <= total {
		return ""
	}
	return fmt.Sprintf("%d of the %d late answers in second %d", worst, total, at)
}

// fidelitySeeds is how many seeds the fidelity check simulates.
const fidelitySeeds = 20

// seedRuns are one setup simulated with several seeds.
type seedRuns struct {
	runs []*sim.Result
	mean *sim.Result // the mean throughput, p99, violation rate and ComputeOverP50
}

func simulateSeeds(t testing.TB, setup sim.Setup, n int) seedRuns {
	t.Helper()
	var out seedRuns
	out.mean = &sim.Result{}
	for seed := range uint64(n) {
		setup.Seed = seed + 1
		rs, err := sim.Compare(setup, []string{"infaas"})
		if err != nil {
			t.Fatal(err)
		}
		r := rs[0]
		out.runs = append(out.runs, r)
		out.mean.ThroughputQPS += r.ThroughputQPS / float64(n)
		out.mean.P99Ms += r.P99Ms / float64(n)
		out.mean.ViolationRate += r.ViolationRate / float64(n)
		out.mean.ComputeOverP50 += r.ComputeOverP50 / float64(n)
	}
	return out
}

// rank is the share of the runs whose figure (of) is below x.
func (s seedRuns) rank(x float64, of func(*sim.Result) float64) float64 {
	below := 0.0
	for _, r := range s.runs {
		if of(r) < x {
			below++
		}
	}
	return below / float64(max(len(s.runs), 1))
}

// spread is the range of the runs' figures, and the 10th to 90th
// percentile.
func (s seedRuns) spread(of func(*sim.Result) float64) string {
	xs := make([]float64, len(s.runs))
	for i, r := range s.runs {
		xs[i] = of(r)
	}
	slices.Sort(xs)
	n := len(xs)
	return fmt.Sprintf("min %.2f, p10 %.2f, p90 %.2f, max %.2f", xs[0], xs[n/10], xs[n*9/10-1], xs[n-1])
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
			l = append(l, fmt.Sprintf("%.1fs %s %s %s (%s)", e.Time.Sub(start).Seconds(), e.Source, e.Action, e.Variant, e.Message))
		}
	}
	for _, e := range simulated {
		if e.Source != "monitor" {
			m = append(m, fmt.Sprintf("%.1fs %s %s %s (%s)", e.T, e.Source, e.Action, e.Variant, e.Message))
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
	live, simulated, last := windowCounts(rows, series, window)
	for w := 0; w <= last; w++ {
		l, m := live[w], simulated[w]
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

// windowCounts sums what the live run (rows) and the simulation (series)
// answered, answered late and refused over windows of window seconds,
// indexed by window; every window up to last is present on both sides.
func windowCounts(rows []loadgen.Row, series []sim.Sample, window int) (live, simulated []windowCount, last int) {
	for _, r := range rows {
		last = max(last, r.Second/window)
	}
	for _, r := range series {
		last = max(last, simSecond(r)/window)
	}
	live, simulated = make([]windowCount, last+1), make([]windowCount, last+1)
	for _, r := range rows {
		c := &live[r.Second/window]
		c.answered, c.late, c.refused = c.answered+r.Answered, c.late+r.Violations, c.refused+r.Refused
	}
	for _, r := range series {
		c := &simulated[simSecond(r)/window]
		c.answered, c.late, c.refused = c.answered+r.Answered, c.late+r.Late, c.refused+r.Refused
	}
	return live, simulated, last
}

// windowCount is one window's answered, late and refused queries.
type windowCount struct{ answered, late, refused int }

// simSecond is the second a simulation row covers: a row's T is its end
// (rows of one second, sim.DefaultConfig), so it covers the second before.
func simSecond(r sim.Sample) int { return max(int(math.Round(r.T))-1, 0) }

// logLateSeconds logs, for every second in which either side answered
// late, the live and the simulated counts (live/sim), with the answered
// counts beside: where in a step the two part.
func logLateSeconds(t testing.TB, rows []loadgen.Row, series []sim.Sample) {
	t.Helper()
	live, simulated, last := windowCounts(rows, series, 1)
	var parts []string
	for sec := 0; sec <= last; sec++ {
		if l, m := live[sec], simulated[sec]; l.late+m.late > 0 {
			parts = append(parts, fmt.Sprintf("%d: %d/%d of %d/%d", sec, l.late, m.late, l.answered, m.answered))
		}
	}
	t.Logf("late by second, live/sim of answered live/sim: %s", strings.Join(parts, "; "))
}

// readyLines lists the replicas the workers made ready since from, as
// their log lines say ("replica ready" with load_ms): when (seconds
// since from), which, and how long the load took.
func readyLines(log string, from time.Time) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="replica ready"`) {
			continue
		}
		field := func(name string) string {
			i := strings.Index(line, " "+name+"=")
			if i < 0 {
				return ""
			}
			v := line[i+len(name)+2:]
			if j := strings.IndexByte(v, ' '); j >= 0 {
				v = v[:j]
			}
			return v
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(line)[0], "time="))
		if err != nil || at.Before(from) {
			continue
		}
		out = append(out, fmt.Sprintf("%.1fs %s in %s ms", at.Sub(from).Seconds(), field("replica"), field("load_ms")))
	}
	return strings.Join(out, "; ")
}

// loadTimes lists the variants' profiled load times.
func loadTimes(vs []catalog.Variant) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%s %.0f ms", v.Name, v.Profile.LoadMs))
	}
	return strings.Join(parts, ", ")
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

// hostCPU reads, now, the CPU time used so far by the server process (not
// its worker children) and by this test process (the load generator),
// and the time the hypervisor has stolen from this VM's CPUs (from
// /proc/stat), for the log. (A reading of the whole host less the
// batches' compute time came out below the two processes' alone: a
// batch's wall time holds the time its thread waited for a core, which
// is the slow-down to be measured.)
func hostCPU(t testing.TB, s *server) cpuMark {
	t.Helper()
	at := time.Now()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The first line sums the CPUs: user nice system idle iowait irq
	// softirq steal …, in clock ticks (100 a second on Linux).
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		t.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	steal, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		t.Fatalf("/proc/stat: %q: %v", line, err)
	}
	return cpuMark{at: at, procs: procCPU(t, s), steal: time.Duration(steal) * 10 * time.Millisecond}
}

// cpuMark is hostCPU's reading at a moment.
type cpuMark struct {
	at           time.Time
	procs, steal time.Duration
}

// rates are the CPU seconds a second the two processes used and the
// hypervisor stole between m and a later reading.
func (m cpuMark) rates(later cpuMark) (procs, steal float64) {
	d := float64(later.at.Sub(m.at))
	return float64(later.procs-m.procs) / d, float64(later.steal-m.steal) / d
}

// procCPU is the CPU time used so far by the server process (not its
// worker children) and by this test process (the load generator).
func procCPU(t testing.TB, s *server) time.Duration {
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

// hostLoad is what the host did over a load since from: the rate the
// load ran at (queries sent a second of its schedule), the CPU seconds a
// second the server and this process took above what they took idle
// (idle: their rate over an idle spell), and the CPU the hypervisor stole.
func hostLoad(t testing.TB, s *server, sum loadgen.Summary, from cpuMark, idle float64) loadCPU {
	t.Helper()
	busy, steal := from.rates(hostCPU(t, s))
	return loadCPU{rate: float64(sum.Sent) / max(sum.DurationS, 1e-9), busy: max(busy-idle, 0), steal: steal}
}

// loadCPU is hostLoad's account of one load.
type loadCPU struct{ rate, busy, steal float64 }

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

// recorder is a loadgen.Sender that keeps every answer: when it was sent,
// its latency as the generator measures it (the call to Send), and the
// server's account of its time in the worker.
type recorder struct {
	*loadgen.HTTPSender
	mu      sync.Mutex
	start   time.Time
	answers []answer
	refused map[string]int // by the server's message, numbers left out
}

type answer struct {
	At      time.Duration  `json:"at_ns"` // sent, since the recorder's start
	Latency time.Duration  `json:"latency_ns"`
	Served  loadgen.Timing `json:"served"`
	Variant string         `json:"variant"`
}

func newRecorder(s *server) *recorder {
	return &recorder{HTTPSender: loadgen.NewHTTPSender("http://"+s.addr, 64, 1), start: time.Now()}
}

func (r *recorder) Send(c context.Context, p *loadgen.Prepared) loadgen.Outcome {
	start := time.Now()
	o := r.HTTPSender.Send(c, p)
	switch o.Result {
	case loadgen.Answered:
		d := time.Since(start)
		r.mu.Lock()
		r.answers = append(r.answers, answer{At: start.Sub(r.start), Latency: d, Served: o.Served, Variant: o.Variant})
		r.mu.Unlock()
	case loadgen.Refused:
		why := strings.Map(func(c rune) rune {
			if c >= '0' && c <= '9' || c == '.' {
				return -1
			}
			return c
		}, fmt.Sprint(o.Err))
		r.mu.Lock()
		if r.refused == nil {
			r.refused = map[string]int{}
		}
		r.refused[why]++
		r.mu.Unlock()
	}
	return o
}

// take returns the answers recorded so far and the refusals by reason,
// and forgets them.
func (r *recorder) take() ([]answer, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, why := r.answers, r.refused
	r.answers, r.refused = nil, nil
	return a, why
}

// dump writes v as JSON to the file run-N/name.json in the folder
// INFAAS_FIDELITY_DUMP names, when it does (for study; not in the suite),
// N being the fidelity run's number in this process (dumpRun).
func dump(t testing.TB, name string, v any) {
	dir := os.Getenv("INFAAS_FIDELITY_DUMP")
	if dir == "" {
		return
	}
	dir = filepath.Join(dir, fmt.Sprintf("run-%d", dumpRun))
	b, err := json.Marshal(v)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// dumpRun numbers the fidelity runs of this process, for dump.
var dumpRun int

// replicasLoaded counts the server's ready replicas by variant.
func replicasLoaded(t testing.TB, s *server) map[string]int {
	t.Helper()
	ws, err := s.c.Workers(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, w := range ws {
		for _, r := range w.Replicas {
			if r.State == worker.StateReady {
				out[r.Variant]++
			}
		}
	}
	return out
}

// servedBatch is one batch the workers ran, as its answers tell: where,
// its size, its compute time and its variant's p50 at that size on cpu-1.
type servedBatch struct {
	worker, replica string
	size            int
	ms, p50         float64
	at              time.Duration // when its first answer was sent
}

// batchesOf lists the batches answers ran in, in the order they were
// sent (batches of unprofiled variants left out). The answers of one
// batch share its worker, replica, size and compute time (to the
// microsecond), but distinct batches can share them too, so every size
// answers with one key count as one batch (a batch of n one-sample
// requests answers n). Keeping one batch per distinct key, as this test
// once did, dropped most batches of the common times and kept the rare
// ones: a tail-heavy sample (1,248 "batches" of 4,036 batch-1 answers).
func batchesOf(answers []answer, vs []catalog.Variant) []servedBatch {
	type key struct {
		worker, replica string
		size            int
		ms              float64
	}
	profiles := map[string]catalog.Profile{}
	for _, v := range vs {
		if prof, ok := v.ProfileOn("cpu-1"); ok {
			profiles[v.Name] = prof
		}
	}
	seen := map[key]int{}
	var out []servedBatch
	for _, a := range answers {
		k := key{a.Served.Worker, a.Served.Replica, a.Served.BatchSize, a.Served.ComputeMs}
		if !a.Served.Known || k.size < 1 || k.ms <= 0 {
			continue
		}
		prof, ok := profiles[a.Variant]
		if !ok || prof.P50At(k.size) <= 0 {
			continue
		}
		if seen[k]++; (seen[k]-1)%k.size == 0 {
			out = append(out, servedBatch{k.worker, k.replica, k.size, k.ms, prof.P50At(k.size), a.At})
		}
	}
	return out
}

// serviceShape is each batch's compute time over its variant's p50 at its
// size on cpu-1, from answers, in order (batchesOf).
func serviceShape(answers []answer, vs []catalog.Variant) []float64 {
	var out []float64
	for _, b := range batchesOf(answers, vs) {
		out = append(out, b.ms/b.p50)
	}
	return out
}

// relative is xs over their mean.
func relative(xs []float64) []float64 {
	mean := 0.0
	for _, x := range xs {
		mean += x / float64(len(xs))
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x / max(mean, 1e-12)
	}
	return out
}

// perWorker describes each worker's batches among answers, over a load
// that ran for dur: how many, their compute time over the profiles' p50s,
// and the share of the time the worker spent computing.
func perWorker(answers []answer, vs []catalog.Variant, dur time.Duration) string {
	type sums struct {
		n           int
		live, p50ms float64
	}
	by := map[string]*sums{}
	for _, b := range batchesOf(answers, vs) {
		if by[b.worker] == nil {
			by[b.worker] = &sums{}
		}
		w := by[b.worker]
		w.n++
		w.live += b.ms
		w.p50ms += b.p50
	}
	var parts []string
	for _, w := range slices.Sorted(maps.Keys(by)) {
		x := by[w]
		parts = append(parts, fmt.Sprintf("%s: %d batches at %.3f× p50, busy %.0f%%", w, x.n, x.live/x.p50ms, 100*x.live/float64(dur.Milliseconds())))
	}
	return strings.Join(parts, "; ")
}

// quantiles describes a sample: its mean and some quantiles.
func quantiles(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	s := slices.Sorted(slices.Values(xs))
	var mean float64
	for _, x := range s {
		mean += x / float64(len(s))
	}
	q := func(p float64) float64 { return s[min(int(p*float64(len(s))), len(s)-1)] }
	return fmt.Sprintf("mean %.3f, p50 %.3f, p90 %.3f, p99 %.3f, max %.3f", mean, q(0.5), q(0.9), q(0.99), s[len(s)-1])
}

// outside is each answer's time outside the worker, at least 0, sorted:
// its latency less the time its own request spent in the worker (queued
// and computing, as its answer says), or less inWorker — the average —
// when the answer does not say. Less the average, the in-worker spread
// stays in the sample: on a host where a batch takes 20 ms and its times
// spread to 1.8× the mean, the light load's sample had a p99 of 36 ms
// against 6.4 ms answer by answer, and the simulator, which draws the
// in-worker spread itself, counted it twice (its p99 and violation rate
// above the live ones in every run of 2026-12-06's first set on that
// host).
func outside(answers []answer, inWorker time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(answers)+1)
	for _, a := range answers {
		in := inWorker
		if a.Served.Known {
			in = time.Duration((a.Served.QueueMs + a.Served.ComputeMs) * float64(time.Millisecond))
		}
		out = append(out, max(a.Latency-in, 0))
	}
	if len(out) == 0 {
		out = append(out, 0)
	}
	slices.Sort(out)
	return out
}

// TestHostStall: the stall rule tells a host that stalled (the late
// answers of the run that first showed one) from late answers spread over
// a peak (those of passing runs), and wants at least 10.
func TestHostStall(t *testing.T) {
	rows := func(late ...int) []loadgen.Row {
		out := make([]loadgen.Row, len(late))
		for i, n := range late {
			out[i] = loadgen.Row{Second: i, Violations: n}
		}
		return out
	}
	for _, tt := range []struct {
		late  []int
		stall bool
	}{
		{[]int{0, 0, 42, 19, 0}, true},              // 61 in 2 seconds, 42 in one
		{[]int{3, 19, 8, 7, 5, 5}, false},           // 19 of 47: 40 %, a peak
		{[]int{2, 17, 10, 9, 8, 6, 4, 3, 2}, false}, // 17 of 61
		{[]int{0, 9, 0}, false},                     // too few to tell
		{[]int{}, false},
	} {
		if got := hostStall(rows(tt.late...)) != ""; got != tt.stall {
			t.Errorf("late answers %v: stall %v, want %v", tt.late, got, tt.stall)
		}
	}
	if got := hostStall(rows(0, 0, 42, 19, 0)); got != "42 of the 61 late answers in second 2" {
		t.Errorf("hostStall says %q", got)
	}
}

// TestBatchesOf: answers that share a batch's key count as one batch per
// batch size of them, in the order sent; unprofiled variants are left out.
func TestBatchesOf(t *testing.T) {
	prof := func(p50 float64) catalog.Profile {
		return catalog.Profile{LatencyMs: map[int]catalog.Latency{1: {P50: p50, P99: 2 * p50}, 8: {P50: 4 * p50, P99: 8 * p50}}}
	}
	vs := []catalog.Variant{{Name: "a", Profiles: map[string]catalog.Profile{"cpu-1": prof(2)}}}
	ans := func(n int, variant, worker string, size int, ms float64) []answer {
		out := make([]answer, n)
		for i := range out {
			out[i] = answer{Variant: variant, Served: loadgen.Timing{Known: true, Worker: worker, Replica: variant + "#1", BatchSize: size, ComputeMs: ms}}
		}
		return out
	}
	var answers []answer
	answers = append(answers, ans(3, "a", "w1", 1, 3)...)  // three batch-1 runs that took 3 ms each
	answers = append(answers, ans(16, "a", "w1", 8, 9)...) // two batches of 8 with one time
	answers = append(answers, ans(5, "a", "w2", 8, 9)...)  // one batch on another worker, partly seen
	answers = append(answers, ans(4, "b", "w1", 1, 3)...)  // unprofiled: left out
	got := batchesOf(answers, vs)
	var desc []string
	for _, b := range got {
		desc = append(desc, fmt.Sprintf("%s b%d %.0f/%.0f", b.worker, b.size, b.ms, b.p50))
	}
	want := "w1 b1 3/2, w1 b1 3/2, w1 b1 3/2, w1 b8 9/8, w1 b8 9/8, w2 b8 9/8"
	if d := strings.Join(desc, ", "); d != want {
		t.Errorf("batches %s, want %s", d, want)
	}
	if s := serviceShape(answers, vs); len(s) != 6 || s[0] != 1.5 || s[5] != 9.0/8 {
		t.Errorf("shape %v", s)
	}
}

// TestHostSpeedTrace: each window's level is its batches' compute over
// their p50s (batches before the schedule left out), the least window's
// level is the base, a window with no batches keeps the level before it,
// and every worker gets a window's factor over the base where it is
// above 1.
func TestHostSpeedTrace(t *testing.T) {
	vs := []catalog.Variant{{Name: "a", Profiles: map[string]catalog.Profile{"cpu-1": {LatencyMs: map[int]catalog.Latency{1: {P50: 2, P99: 4}}}}}}
	batch := func(at time.Duration, replica string, ms float64) answer {
		return answer{At: at, Variant: "a", Served: loadgen.Timing{Known: true, Worker: "w", Replica: replica, BatchSize: 1, ComputeMs: ms}}
	}
	s := time.Second
	answers := []answer{
		batch(1*s, "a#1", 9),                       // before the schedule (from 2 s): left out
		batch(2*s, "a#1", 3), batch(3*s, "a#2", 2), // window 0: 5 ms over 4 ms of p50s, 1.25
		batch(5*s, "a#1", 2.5),                          // window 1: 1.25 — with window 0 the base
		batch(12*s, "a#1", 3.75), batch(13*s, "a#2", 3), // window 3: 6.75 over 4, 1.6875; window 2 empty
	}
	level, slow := hostSpeedTrace(answers, vs, 2*s, 3*s, 2)
	if level != 1.25 {
		t.Errorf("level %v, want 1.25", level)
	}
	var got []string
	for _, in := range slow {
		got = append(got, fmt.Sprintf("w%d %v+%v ×%.2f", in.Worker, in.At, in.For, in.Factor))
	}
	// Window 2 keeps window 1's level: no factor there.
	want := "w0 9s+3s ×1.35, w1 9s+3s ×1.35"
	if g := strings.Join(got, ", "); g != want {
		t.Errorf("interference %s, want %s", g, want)
	}
	if level, slow := hostSpeedTrace(nil, vs, 0, s, 2); level != 1 || slow != nil {
		t.Errorf("no batches: level %v, %v; want 1 and none", level, slow)
	}
}

func TestSelfPrediction(t *testing.T) {
	run := func(liveRate, simRate float64) fidelityPair {
		return fidelityPair{live: figures{100, 50, liveRate, 1000}, sim: figures{100, 50, simRate, 1000}}
	}
	self, bySim := selfPrediction([]fidelityPair{run(0.01, 0.02), run(0.02, 0.02), run(0.03, 0.02)})
	// Run 1 against the others' 2.5 %: 60 % off; run 2 against 2 %: 0;
	// run 3 against 1.5 %: 50 %. The simulator's 2 %: 50, 0 and 33.3 %.
	if math.Abs(self.rate-110.0/3) > 1e-9 || math.Abs(bySim.rate-250.0/9) > 1e-9 {
		t.Errorf("violation distances: self %.4f %% (want 36.6667), simulator %.4f %% (want 27.7778)", self.rate, bySim.rate)
	}
	if self.qps != 0 || self.p99 != 0 || bySim.qps != 0 {
		t.Errorf("equal throughputs and p99s are 0 %% apart, got %+v and %+v", self, bySim)
	}
	if s, _ := selfPrediction([]fidelityPair{run(0.01, 0.01)}); s != (figures{}) {
		t.Errorf("one run has nothing to predict it: %+v", s)
	}
}

// TestWindowCounts: live rows count in their second's window, simulation
// rows in the window of the second before their end, and both sides have
// every window up to the last either reaches.
func TestWindowCounts(t *testing.T) {
	rows := []loadgen.Row{{Second: 0, Answered: 5, Violations: 1}, {Second: 1, Answered: 7, Refused: 2}, {Second: 2, Answered: 3}}
	series := []sim.Sample{{T: 1, Answered: 4, Late: 2}, {T: 2, Answered: 6}, {T: 5, Answered: 1, Refused: 3}}
	live, simulated, last := windowCounts(rows, series, 2)
	if last != 2 || len(live) != 3 || len(simulated) != 3 {
		t.Fatalf("last window %d, %d live and %d simulated windows: want 2, 3 and 3", last, len(live), len(simulated))
	}
	wantLive := []windowCount{{12, 1, 2}, {3, 0, 0}, {}}
	wantSim := []windowCount{{10, 2, 0}, {}, {1, 0, 3}}
	if !slices.Equal(live, wantLive) || !slices.Equal(simulated, wantSim) {
		t.Errorf("live %v, simulated %v: want %v and %v", live, simulated, wantLive, wantSim)
	}
}
