package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infaas/infaas/worker"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, func() []worker.Status {
		return []worker.Status{{ID: "w1", MemoryCapacity: 100, MemoryReserved: 40,
			Replicas: []worker.ReplicaInfo{{ID: "r1", Variant: "v", State: worker.StateReady}}}}
	})
	m.Decision("serve", "loaded")
	m.Served("v", "w", 2*time.Millisecond, time.Millisecond, time.Millisecond, false)
	m.Failed("overloaded")
	m.Action("model-autoscaler", "replicate", "demand-near-capacity")
	m.Action("model-autoscaler", "replicate", "demand-near-capacity")
	m.Action("monitor", "interfered", "interference")
	if got := testutil.ToFloat64(m.success.WithLabelValues("v", "w")); got != 1 {
		t.Fatalf("success %v", got)
	}
	if got := testutil.ToFloat64(m.unmet.WithLabelValues("v", "w")); got != 1 {
		t.Fatalf("unmet %v", got)
	}
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP infaas_autoscale_actions_total Actions infaas took on its own (autoscaling and mitigation), by source, action and reason.
# TYPE infaas_autoscale_actions_total counter
infaas_autoscale_actions_total{action="interfered",reason="interference",source="monitor"} 1
infaas_autoscale_actions_total{action="replicate",reason="demand-near-capacity",source="model-autoscaler"} 2
# HELP infaas_worker_memory_reserved_bytes Memory reserved by a worker's replicas.
# TYPE infaas_worker_memory_reserved_bytes gauge
infaas_worker_memory_reserved_bytes{worker="w1"} 40
# HELP infaas_worker_up 1 while the worker is in routing (running and reporting), by hardware class.
# TYPE infaas_worker_up gauge
infaas_worker_up{class="",worker="w1"} 0
`), "infaas_autoscale_actions_total", "infaas_worker_memory_reserved_bytes", "infaas_worker_up")
	if err != nil {
		t.Fatal(err)
	}
	var nilM *Metrics
	nilM.Served("v", "w", 0, 0, 0, true) // a nil Metrics records nothing and does not panic
	nilM.Action("monitor", "cleared", "recovered")
}
