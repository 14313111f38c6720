package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
)

// A replica whose profile promises far more than the machine delivers is
// flagged interfered in State, with the reason.
func TestHealthFlagsOnLiveReplica(t *testing.T) {
	z := newZoo(t)
	v, arch := z.variant(t, "mnist-mlp-m", 4, 1.0/255)
	v.Profile.LatencyMs = map[int]catalog.Latency{1: {P50: 1e-5, P99: 1e-5}, 4: {P50: 1e-5, P99: 1e-5}} // 10 ns
	w := newWorker(t, z, func(c *Config) {
		c.Thresholds = Thresholds{Latency: 2, QPS: 0, Outstanding: 1, DrainBudget: time.Second, RefusedFraction: 0.5, MinBatches: 5}
	})
	run(t, w)
	id := load(t, w, v, arch)
	for range health.WarmupBatches + 10 { // the warm-up batches are not judged
		if _, err := w.Infer(context.Background(), id, Request{Inputs: pixels(z.raw(0, 1)), Batch: 1}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := w.Replica(id)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Health.Interfered || len(info.Health.Reasons) != 1 || !strings.Contains(info.Health.Reasons[0], "the profiled 0.000 ms at batch 1") {
		t.Fatalf("health %+v", info.Health)
	}
	t.Log(info.Health.Reasons[0])
}
