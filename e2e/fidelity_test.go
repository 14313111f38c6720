package e2e

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/loadgen"
	"github.com/infaas/infaas/sim"
)

// TestSimulatorFidelity is the simulator's check against the live system:
// one fluctuating schedule, live with loadgen against two one-core local
// workers and simulated on the profiles the live registration measured,
// with the same policy, autoscaler windows, worker settings, seed and
// requirement. Throughput, p99 and the violation rate must agree within
// 15% (rates within 2 points when both are small). The simulator's one
// free parameter, the time a query spends outside the worker (HTTP, JSON,
// the controller, the gRPC hop), is measured first on a separate light
// load: the live median there minus the profiled median.
func TestSimulatorFidelity(t *testing.T) {
	s := startServer(t, t.TempDir(), append([]string{"--workers", "cpu-1,cpu-1"}, autoscaleArgs...)...)
	capacity, p99 := registerConvNet(t, s, "convnet")
	target := math.Round(max(60, 15*p99))
	set := loadgen.RequirementSet{Model: "convnet", LatencyMs: target}

	// Calibrate the overhead on a light load of its own.
	calib, _ := runLoad(t, s, fmt.Sprintf("constant:%.0f:6s", 0.1*capacity), set, nil)
	_, vs, err := s.c.Catalog(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var served float64
	for _, v := range vs {
		if p, ok := v.ProfileOn("cpu-1"); ok && v.Threads == 1 && (served == 0 || p.P50At(1) < served) {
			served = p.P50At(1)
		}
	}
	overhead := time.Duration(max(0, calib.P50Ms-served) * float64(time.Millisecond))
	t.Logf("overhead outside the worker: %s (live p50 %.2f ms at light load, profiled p50 %.2f ms)", overhead, calib.P50Ms, served)

	schedule := fmt.Sprintf("steps:%.0f@8s,%.0f@16s,%.0f@8s", 0.15*capacity, 1.2*capacity, 0.15*capacity)
	live, _ := runLoad(t, s, schedule, set, nil)

	archs, vs, err := s.c.Catalog(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	models := autoscale.DefaultConfig()
	models.UpWindow, models.DownWindow, models.Cooldown, models.IdleUnload = time.Second, 3*time.Second, 2*time.Second, -1
	setup := sim.Setup{Catalog: sim.Catalog{Architectures: archs, Variants: vs}, Hardware: "local", Workers: []string{"cpu-1", "cpu-1"},
		Workload: schedule, Mix: loadgen.Mix{set}, Seed: 1, Noise: 1, Overhead: overhead, Models: &models}
	rs, err := sim.Compare(setup, []string{"infaas"})
	if err != nil {
		t.Fatal(err)
	}
	simr := rs[0]
	t.Logf("live: sent %d answered %d refused %d failed %d, %.1f q/s, p50 %.1f ms, p99 %.1f ms, violations %.2f%%",
		live.Sent, live.Answered, live.Refused, live.Failed, live.ThroughputQPS, live.P50Ms, live.P99Ms, 100*live.ViolationRate)
	t.Logf("sim:  sent %d answered %d refused %d failed %d, %.1f q/s, p50 %.1f ms, p99 %.1f ms, violations %.2f%%, actions %v",
		simr.Sent, simr.Answered, simr.Refused, simr.Failed, simr.ThroughputQPS, simr.P50Ms, simr.P99Ms, 100*simr.ViolationRate, simr.Actions)
	liveTput := float64(live.Answered) / live.DurationS
	check := func(what string, a, b, absTol float64) {
		if d := math.Abs(a - b); d > max(0.15*max(a, b), absTol) {
			t.Errorf("%s: live %.3f, simulated %.3f: off by %.0f%%", what, a, b, 100*d/max(a, b))
		}
	}
	check("throughput (q/s)", liveTput, simr.ThroughputQPS, 0)
	check("p99 (ms)", live.P99Ms, simr.P99Ms, 2)
	check("violation rate", live.ViolationRate, simr.ViolationRate, 0.02)
}
