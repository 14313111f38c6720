package sim

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/policies"
	"github.com/infaas/infaas/workload"
)

// testVariant is a CPU variant profiled on class with p50 at batch 1 and
// at maxBatch (p99 = 1.3 × p50).
func testVariant(arch, prec string, maxBatch int, acc, p50b1, p50max float64, class string) catalog.Variant {
	lat := map[int]catalog.Latency{1: {P50: p50b1, P99: 1.3 * p50b1, Samples: 200}}
	if maxBatch > 1 {
		lat[maxBatch] = catalog.Latency{P50: p50max, P99: 1.3 * p50max, Samples: 200}
	}
	p := catalog.Profile{LoadMs: 200, PeakMemoryBytes: 64 << 20, LatencyMs: lat}
	p.ThroughputQPS = p.ThroughputAt(maxBatch)
	return catalog.Variant{Name: catalog.VariantName(arch, prec, "all", 1, maxBatch, "cpu"), Architecture: arch, Precision: prec,
		Provider: "cpu", Hardware: class, Threads: 1, MaxBatch: maxBatch, Accuracy: acc, FileBytes: 10 << 20, Profile: p}
}

func testConfig(t testing.TB, policy, schedule string) Config {
	t.Helper()
	cfg := DefaultConfig()
	p, err := policies.Lookup(policy)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy = p
	h := catalog.CPUClass(1)
	cfg.Classes = []catalog.HardwareClass{h}
	cfg.Architectures = []catalog.Architecture{{Name: "net", Task: "classification", Dataset: "toy", Accuracy: 90}}
	cfg.Variants = []catalog.Variant{
		testVariant("net", "fp32", 1, 90, 10, 10, h.Name),
		testVariant("net", "fp32", 8, 90, 10, 30, h.Name),
		testVariant("net", "int8", 8, 89, 5, 15, h.Name),
	}
	cfg.Workers = []string{h.Name, h.Name, h.Name, h.Name}
	s, err := workload.ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Schedule = s
	cfg.Mix = workload.Mix{{Weight: 1, Model: "classification/toy", LatencyMs: 200}}
	return cfg
}

func TestRunDeterministic(t *testing.T) {
	cfg := testConfig(t, "infaas", "fluctuating:60s")
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d answered %d refused %d (%v) failed %d late %d p50 %.1f p99 %.1f cost %.5f actions %v loads %d",
		a.Sent, a.Answered, a.Refused, a.RefusedWhy, a.Failed, a.Late, a.P50Ms, a.P99Ms, a.CostUSD, a.Actions, a.Loads)
	for _, e := range a.Events {
		t.Logf("%6.1fs %s %s %s on %s: %s", e.T, e.Source, e.Action, e.Variant, e.Worker, e.Message)
	}
	if a.Sent == 0 || a.Answered == 0 {
		t.Fatalf("nothing served: %+v", a)
	}
	a.latency, b.latency = workload.Histogram{}, workload.Histogram{}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs with one seed differ:\n%+v\n%+v", a, b)
	}
	cfg.Seed = 2
	c, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sent == a.Sent && c.P99Ms == a.P99Ms {
		t.Errorf("another seed gave the same run")
	}
	_ = fmt.Sprint
	_ = time.Second
}

// TestAutoscalingHelps: on a fluctuating load that one replica cannot
// carry at its peak, the model autoscaler adds capacity (a replica or a
// switch, with its reason) and misses fewer queries than the same run
// with autoscaling off.
func TestAutoscalingHelps(t *testing.T) {
	cfg := testConfig(t, "infaas", "steps:50@20s,900@40s,50@40s")
	cfg.Workers = cfg.Workers[:2]
	on, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Autoscale = false
	off, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("on: %+v", summary(on))
	t.Logf("off: %+v", summary(off))
	if on.Actions["replicate"]+on.Actions["switch"] == 0 {
		t.Fatalf("no scale-up action: %v", on.Actions)
	}
	for _, e := range on.Events {
		if (e.Action == "replicate" || e.Action == "switch") && (e.Reason == "" || e.Message == "") {
			t.Errorf("unexplained action: %+v", e)
		}
	}
	if on.MissRate >= off.MissRate {
		t.Errorf("autoscaling missed %.3f of the queries, without it %.3f", on.MissRate, off.MissRate)
	}
}

// TestInterferenceFlagged: a worker slowed four-fold is flagged
// interfered, and the autoscaler replicates away from it.
func TestInterferenceFlagged(t *testing.T) {
	cfg := testConfig(t, "infaas", "constant:60:60s")
	cfg.Interference = []Interference{{Worker: 0, At: 20 * time.Second, For: 30 * time.Second, Factor: 6}}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var flagged, moved bool
	for _, e := range r.Events {
		t.Logf("%5.1fs %s %s %s on %s (%s): %s", e.T, e.Source, e.Action, e.Variant, e.Worker, e.Reason, e.Message)
		flagged = flagged || e.Source == "monitor" && e.Action == "interfered" && e.T >= 20
		moved = moved || e.Source == "model-autoscaler" && e.Reason == "interfered"
	}
	if !flagged || !moved {
		t.Errorf("interference flagged %v, mitigated %v", flagged, moved)
	}
}

func summary(r *Result) string {
	return fmt.Sprintf("sent %d answered %d refused %d %v failed %d late %d miss %.3f p99 %.1f ms cost $%.5f actions %v",
		r.Sent, r.Answered, r.Refused, r.RefusedWhy, r.Failed, r.Late, r.MissRate, r.P99Ms, r.CostUSD, r.Actions)
}

// TestCompareSameSeedSameTable: a comparison on the paper's hardware with
// the measured convnets catalogue is reproducible to the byte, every
// policy faces the same queries, and every result is sane.
func TestCompareSameSeedSameTable(t *testing.T) {
	cat, err := LoadCatalog("catalogs/convnets.json")
	if err != nil {
		t.Fatal(err)
	}
	s := Setup{Catalog: cat, Hardware: "paper", MaxWorkers: 6, Workload: "fluctuating:40s", Seed: 7, Noise: 1}
	a, err := Compare(s, Comparison)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compare(s, Comparison)
	if err != nil {
		t.Fatal(err)
	}
	ta, tb := FormatTable(a), FormatTable(b)
	t.Logf("\n%s", ta)
	if ta != tb {
		t.Fatalf("same seed, different tables:\n%s\n%s", ta, tb)
	}
	for _, r := range a {
		if r.Sent != a[0].Sent {
			t.Errorf("%s saw %d queries, %s %d: the policies must face the same load", r.Policy, r.Sent, a[0].Policy, a[0].Sent)
		}
		if r.Answered+r.Refused+r.Failed != r.Sent {
			t.Errorf("%s: %d answered + %d refused + %d failed ≠ %d sent", r.Policy, r.Answered, r.Refused, r.Failed, r.Sent)
		}
		if r.CostUSD <= 0 || r.P99Ms <= 0 || len(r.Series) == 0 {
			t.Errorf("%s: implausible result %+v", r.Policy, summary(r))
		}
		if len(r.Assumptions) == 0 {
			t.Errorf("%s: the paper's hardware is derived, but no assumption is listed", r.Policy)
		}
	}
}

func TestTargets(t *testing.T) {
	in := &Result{Policy: "infaas", Sent: 100, Answered: 100, ThroughputQPS: 100, CostUSD: 1, MissRate: 0.01}
	sm := &Result{Policy: "sm+", Sent: 100, Answered: 60, Refused: 40, ThroughputQPS: 60, CostUSD: 2, MissRate: 0.4,
		RefusedWhy: map[string]int64{"overloaded": 40}}
	cl := &Result{Policy: "clipper+", Sent: 100, Answered: 100, ThroughputQPS: 100, CostUSD: 9}
	ts := Targets("steady:60s", []*Result{in, sm, cl})
	if len(ts) != 2 || !ts[0].Met || ts[1].Met || !strings.Contains(ts[1].Why, "kept up") {
		t.Fatalf("steady: %+v", ts)
	}
	ts = Targets("fluctuating", []*Result{in, sm, cl})
	if len(ts) != 2 || !ts[0].Met || ts[1].Met || !strings.Contains(ts[1].Line(), "missed") {
		t.Fatalf("fluctuating: %+v", ts)
	}
	ts = Targets("flat", []*Result{in, sm})
	if len(ts) != 1 || ts[0].Met || !strings.Contains(ts[0].Why, "2.0× lower") {
		t.Fatalf("flat: %+v", ts)
	}
	if ts := Targets("constant:5:1s", []*Result{in, sm}); len(ts) != 0 {
		t.Fatalf("no paper claim applies to a constant load: %+v", ts)
	}
}

// TestOverheadSample: a measured sample of times outside the worker
// replaces the median-and-tail model, tail and all. With 4 % of the sample
// far over the target on a load the replicas carry easily, about 4 % of
// the answers miss it; without the sample, almost none do.
func TestOverheadSample(t *testing.T) {
	cfg := testConfig(t, "infaas", "constant:20:60s")
	cfg.Noise = 1
	run := func() float64 {
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Answered < r.Sent*9/10 {
			t.Fatalf("answered %d of %d", r.Answered, r.Sent)
		}
		return r.ViolationRate
	}
	base := run()
	if base > 0.01 {
		t.Fatalf("without a sample, violation rate %.3f, want under 0.01", base)
	}
	cfg.OverheadSample = make([]time.Duration, 100)
	for i := range cfg.OverheadSample {
		cfg.OverheadSample[i] = 2 * time.Millisecond
		if i%25 == 0 {
			cfg.OverheadSample[i] = 400 * time.Millisecond
		}
	}
	if v := run() - base; v < 0.025 || v > 0.055 {
		t.Errorf("with 4%% of the sample over the target, violation rate %.3f more than without, want about 0.04", v)
	}
}

// The host's CPU slows batches by its share of the cores: a fixed 0.5 s a
// second and 25 ms for each of 20 queries a second are the same half a
// core, and slow a batch alike; either is slower than none. On two cores
// the same half core fits beside the one busy worker and slows nothing.
func TestHostCPU(t *testing.T) {
	cores := 1
	run := func(perQuery, base time.Duration) float64 {
		cfg := testConfig(t, "infaas", "constant:20:30s")
		cfg.Noise = 0
		cfg.HostCores = cores
		cfg.HostCPUPerQuery, cfg.HostCPUBase = perQuery, base
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Answered < r.Sent*9/10 {
			t.Fatalf("answered %d of %d", r.Answered, r.Sent)
		}
		return r.MeanMs
	}
	none, base, perQuery := run(0, 0), run(0, 500*time.Millisecond), run(25*time.Millisecond, 0)
	if !(base > none) {
		t.Errorf("mean latency %.3f ms with half a core busy, %.3f ms without: want slower", base, none)
	}
	if math.Abs(base-perQuery) > 0.05*base {
		t.Errorf("mean latency %.3f ms with a fixed half core, %.3f ms with 25 ms × 20 q/s: want the same", base, perQuery)
	}
	cores = 2
	if spare := run(0, 500*time.Millisecond); spare != none {
		t.Errorf("mean latency %.3f ms with half of two cores busy beside one worker, %.3f ms with none: want the same", spare, none)
	}
}

// TestComputeScale: every batch takes ComputeScale times its profiled
// time, so at a light load (no queueing, no batching: each query alone)
// the median grows by (scale − 1) × the serving variant's p50 at batch 1;
// a negative, infinite or NaN scale is refused.
func TestComputeScale(t *testing.T) {
	run := func(k float64) (float64, string) {
		cfg := testConfig(t, "infaas", "constant:5:30s")
		cfg.Noise = 0
		cfg.ComputeScale = k
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Answered < r.Sent*9/10 {
			t.Fatalf("answered %d of %d", r.Answered, r.Sent)
		}
		// Without noise, interference or a host, every batch takes its
		// p50 times the scale, and the result says so.
		if want := max(k, 1); math.Abs(r.ComputeOverP50-want) > 1e-9 {
			t.Errorf("scale %v: batches ran %.6f × their p50s, want %v", k, r.ComputeOverP50, want)
		}
		return r.P50Ms, r.Series[len(r.Series)/2].Variant
	}
	as, v := run(0)
	scaled, v2 := run(1.25)
	if v == "" || v != v2 {
		t.Fatalf("served by %q, then %q: want one variant", v, v2)
	}
	var p50 float64
	for _, x := range testConfig(t, "infaas", "constant:5:30s").Variants {
		if x.Name == v {
			p50 = x.Profile.P50At(1)
		}
	}
	if grew := scaled - as; math.Abs(grew-0.25*p50) > 0.02*p50 {
		t.Errorf("median %.3f ms as profiled, %.3f ms at scale 1.25: grew %.3f ms, want 0.25 × %s's p50 %.3f ms", as, scaled, grew, v, p50)
	}
	for _, k := range []float64{-1, math.NaN(), math.Inf(1)} {
		cfg := testConfig(t, "infaas", "constant:5:30s")
		cfg.ComputeScale = k
		if _, err := Run(cfg); err == nil || !strings.Contains(err.Error(), "compute scale") {
			t.Errorf("compute scale %v: %v, want refused", k, err)
		}
	}
}

// TestServiceShape: a measured shape of batch times replaces the
// profiles' spread. Its level is not taken: batches still take their p50s
// on average (a shape of 1s and 3s is 0.5 and 1.5 × the p50). Its tail
// is: with 4 % of the batches 20 × the shape's mean, about 4 % of the
// answers miss a target the profiles' own spread never misses. Noise 0
// turns it off; a ratio that is not a finite positive number is refused.
func TestServiceShape(t *testing.T) {
	run := func(shape []float64, noise float64) *Result {
		cfg := testConfig(t, "infaas", "constant:10:60s")
		cfg.Mix[0].LatencyMs = 40
		cfg.ServiceShape, cfg.Noise = shape, noise
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Answered < r.Sent*9/10 {
			t.Fatalf("answered %d of %d", r.Answered, r.Sent)
		}
		return r
	}
	if r := run([]float64{1, 3}, 1); math.Abs(r.ComputeOverP50-1) > 0.06 {
		t.Errorf("shape {1, 3}: batches ran %.3f × their p50s, want about 1", r.ComputeOverP50)
	}
	if r := run([]float64{1, 3}, 0); r.ComputeOverP50 != 1 {
		t.Errorf("shape {1, 3} without noise: batches ran %.6f × their p50s, want exactly 1", r.ComputeOverP50)
	}
	base := run(nil, 1).ViolationRate
	tail := make([]float64, 100)
	for i := range tail {
		tail[i] = 1
		if i%25 == 0 {
			tail[i] = 101 // mean 5: 0.2 × p50 for most, 20.2 × for these
		}
	}
	if v := run(tail, 1).ViolationRate; base > 0.005 || v < 0.02 || v > 0.065 {
		t.Errorf("violation rate %.3f with 4%% of batches 20 × the mean, %.3f without: want about 0.04 and none", v, base)
	}
	// In blocks, the measured order is kept: a slow stretch of 100
	// batches at 2.5 × the shape's mean queues up at a load that the same
	// batches spread at random serve, and the p99 shows it.
	stretch := make([]float64, 1000)
	for i := range stretch {
		stretch[i] = 1
		if i < 100 {
			stretch[i] = 3
		}
	}
	p99 := func(block float64) float64 {
		cfg := testConfig(t, "infaas", "constant:100:120s")
		cfg.Workers = cfg.Workers[:1]
		cfg.ServiceShape, cfg.ServiceShapeBlock, cfg.Autoscale = stretch, block, false
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return r.P99Ms
	}
	spread, kept := p99(0), p99(200)
	t.Logf("p99 %.1f ms in blocks, %.1f ms at random", kept, spread)
	if !(kept > 1.3*spread) {
		t.Errorf("p99 %.1f ms with the slow stretch kept in blocks, %.1f ms drawn at random: want the blocks' far higher", kept, spread)
	}
	for _, bad := range [][]float64{{1, 0}, {math.NaN()}, {math.Inf(1)}, {-1}} {
		cfg := testConfig(t, "infaas", "constant:10:1s")
		cfg.ServiceShape = bad
		if _, err := Run(cfg); err == nil || !strings.Contains(err.Error(), "service shape") {
			t.Errorf("shape %v: %v, want a refusal that names the service shape", bad, err)
		}
	}
}

// TestSetupProvision: a simulation can start from replicas already
// loaded — a live cluster's state — and serves them without a load; a
// statically provisioned policy (Clipper+) provisions for itself.
func TestSetupProvision(t *testing.T) {
	cat, err := LoadCatalog("catalogs/convnets.json")
	if err != nil {
		t.Fatal(err)
	}
	s := Setup{Catalog: cat, Hardware: "local", Workload: "constant:5:10s", Seed: 3, Noise: 1}
	fresh, err := Compare(s, []string{"infaas"})
	if err != nil {
		t.Fatal(err)
	}
	if fresh[0].Loads == 0 {
		t.Fatalf("from nothing, no replica was loaded: %s", summary(fresh[0]))
	}
	served := fresh[0].Series[len(fresh[0].Series)-1].Variant
	s.Provision = map[string]int{served: 2}
	started, err := Compare(s, []string{"infaas"})
	if err != nil {
		t.Fatal(err)
	}
	r := started[0]
	if r.Loads != 0 || r.PeakReplicas < 2 || r.Answered != r.Sent {
		t.Errorf("provisioned %s ×2: %d loads, peak %d replicas; %s", served, r.Loads, r.PeakReplicas, summary(r))
	}
	cfg, err := s.Config("clipper+")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cfg.Provision) == fmt.Sprint(s.Provision) {
		t.Errorf("Clipper+ kept the setup's provision %v instead of its own", cfg.Provision)
	}
	s.Provision = map[string]int{"no.such.variant": 1}
	if _, err := Compare(s, []string{"infaas"}); err == nil || !strings.Contains(err.Error(), "no.such.variant") {
		t.Errorf("unknown variant provisioned: %v", err)
	}
}

// TestShedAndStrict: the simulated worker sheds a queued request whose
// deadline passed before its batch started, as the live worker does, and
// a strict request answered after its target is withheld, as the live
// controller does. Batches run 3 × slower than profiled, so queues build
// that admission (which believes the profile until the replica's slowness
// shows) let in.
func TestShedAndStrict(t *testing.T) {
	run := func(target float64, strict bool) *Result {
		cfg := testConfig(t, "infaas", "constant:150:20s")
		cfg.Workers = cfg.Workers[:1]
		cfg.ComputeScale = 3
		cfg.Mix = workload.Mix{{Weight: 1, Model: "classification/toy", LatencyMs: target, Strict: strict}}
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("target %v strict %v: sent %d answered %d late %d refused %v", target, strict, r.Sent, r.Answered, r.Late, r.RefusedWhy)
		return r
	}
	const shed, withheld = "shed: deadline passed in the queue", "strict: answered after its target"
	r := run(60, false)
	if r.RefusedWhy[shed] == 0 {
		t.Errorf("no request shed with batches 3 × slower than profiled: refused %v", r.RefusedWhy)
	}
	if r.RefusedWhy[withheld] != 0 {
		t.Errorf("a request that is not strict was withheld: %v", r.RefusedWhy)
	}
	s := run(60, true)
	if s.Late != 0 {
		t.Errorf("%d strict requests answered late", s.Late)
	}
	if s.RefusedWhy[withheld] == 0 && r.Late > 0 {
		t.Errorf("%d late answers without strict, none withheld with it: %v", r.Late, s.RefusedWhy)
	}
	if n := run(0, false); n.RefusedWhy[shed] != 0 {
		t.Errorf("requests without a target shed: %v", n.RefusedWhy)
	}
}
