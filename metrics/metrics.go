// Package metrics exposes infaas's Prometheus metrics: per-query counters
// and latency histograms recorded by the controller (named after Triton's
// where one exists), a count of the actions infaas takes on its own
// (autoscaling and mitigation, the event log's), and worker gauges read at
// scrape time.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/infaas/infaas/worker"
)

// Metrics records queries. A nil *Metrics records nothing.
type Metrics struct {
	success   *prometheus.CounterVec
	failure   *prometheus.CounterVec
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	queue     *prometheus.HistogramVec
	compute   *prometheus.HistogramVec
	unmet     *prometheus.CounterVec
	failovers *prometheus.CounterVec
	actions   *prometheus.CounterVec
}

var buckets = prometheus.ExponentialBuckets(0.02, 2, 16) // 20 µs … 655 ms

// New registers the query metrics, Go runtime and process collectors, and
// a collector of the workers' state with reg.
func New(reg prometheus.Registerer, workers func() []worker.Status) *Metrics {
	m := &Metrics{
		success: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infaas_inference_request_success",
			Help: "Queries answered, by serving variant and worker."}, []string{"variant", "worker"}),
		failure: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infaas_inference_request_failure",
			Help: "Queries refused or failed, by reason."}, []string{"reason"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infaas_decisions_total",
			Help: "Selection decisions, by action and reason."}, []string{"action", "reason"}),
		unmet: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infaas_requirements_unmet_total",
			Help: "Answered queries that missed their latency target or were served best effort."}, []string{"variant", "worker"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infaas_worker_failovers_total",
			Help: "Queries retried on another replica because their worker failed under them, by failed worker."}, []string{"worker"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infaas_autoscale_actions_total",
			Help: "Actions infaas took on its own (autoscaling and mitigation), by source, action and reason."}, []string{"source", "action", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "infaas_request_duration_ms",
			Help: "Time from arrival to answer inside infaas, milliseconds.", Buckets: buckets}, []string{"variant"}),
		queue: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "infaas_queue_duration_ms",
			Help: "Time queued on the replica, milliseconds.", Buckets: buckets}, []string{"variant"}),
		compute: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "infaas_compute_duration_ms",
			Help: "ONNX Runtime time of the request's batch, milliseconds.", Buckets: buckets}, []string{"variant"}),
	}
	reg.MustRegister(m.success, m.failure, m.decisions, m.unmet, m.failovers, m.actions, m.duration, m.queue, m.compute,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if workers != nil {
		reg.MustRegister(&workerCollector{state: workers})
	}
	return m
}

// Decision counts one selection decision.
func (m *Metrics) Decision(action, reason string) {
	if m != nil {
		m.decisions.WithLabelValues(action, reason).Inc()
	}
}

// Action counts one action infaas took on its own: an autoscaler's or the
// monitor's, as recorded in the event log (events.Log's onAppend).
func (m *Metrics) Action(source, action, reason string) {
	if m != nil {
		m.actions.WithLabelValues(source, action, reason).Inc()
	}
}

// Served records an answered query.
func (m *Metrics) Served(variant, worker string, total, queue, compute time.Duration, met bool) {
	if m == nil {
		return
	}
	m.success.WithLabelValues(variant, worker).Inc()
	m.duration.WithLabelValues(variant).Observe(ms(total))
	m.queue.WithLabelValues(variant).Observe(ms(queue))
	m.compute.WithLabelValues(variant).Observe(ms(compute))
	if !met {
		m.unmet.WithLabelValues(variant, worker).Inc()
	}
}

// Failover counts a query retried elsewhere because worker failed under it.
func (m *Metrics) Failover(worker string) {
	if m != nil {
		m.failovers.WithLabelValues(worker).Inc()
	}
}

// Failed records a query that got an error, by a short reason.
func (m *Metrics) Failed(reason string) {
	if m != nil {
		m.failure.WithLabelValues(reason).Inc()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// workerCollector turns the workers' state into gauges at scrape time.
type workerCollector struct{ state func() []worker.Status }

var (
	descMemCap   = prometheus.NewDesc("infaas_worker_memory_capacity_bytes", "Memory a worker may fill with replicas.", []string{"worker"}, nil)
	descMemRes   = prometheus.NewDesc("infaas_worker_memory_reserved_bytes", "Memory reserved by a worker's replicas.", []string{"worker"}, nil)
	descQueued   = prometheus.NewDesc("infaas_replica_queued_samples", "Samples waiting in a replica's queue.", []string{"worker", "replica", "variant"}, nil)
	descQPS      = prometheus.NewDesc("infaas_replica_qps", "Requests answered per second over the monitor's window.", []string{"worker", "replica", "variant"}, nil)
	descP99      = prometheus.NewDesc("infaas_replica_latency_p99_ms", "p99 latency inside the worker over the monitor's window.", []string{"worker", "replica", "variant"}, nil)
	descHealthy  = prometheus.NewDesc("infaas_replica_healthy", "1 unless the monitor marked the replica overloaded or interfered.", []string{"worker", "replica", "variant"}, nil)
	descReplicas = prometheus.NewDesc("infaas_replicas", "Replicas by state.", []string{"worker", "state"}, nil)
	descUp       = prometheus.NewDesc("infaas_worker_up", "1 while the worker is in routing (running and reporting), by hardware class.", []string{"worker", "class"}, nil)
)

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMemCap, descMemRes, descQueued, descQPS, descP99, descHealthy, descReplicas, descUp} {
		ch <- d
	}
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.state() {
		up := 0.0
		if w.Running {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, w.ID, w.Hardware.Name)
		ch <- prometheus.MustNewConstMetric(descMemCap, prometheus.GaugeValue, float64(w.MemoryCapacity), w.ID)
		ch <- prometheus.MustNewConstMetric(descMemRes, prometheus.GaugeValue, float64(w.MemoryReserved), w.ID)
		states := map[string]int{worker.StateLoading: 0, worker.StateReady: 0, worker.StateDraining: 0}
		for _, r := range w.Replicas {
			states[r.State]++
			healthy := 0.0
			if r.Health.Healthy() {
				healthy = 1
			}
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(r.Stats.Queued), w.ID, r.ID, r.Variant)
			ch <- prometheus.MustNewConstMetric(descQPS, prometheus.GaugeValue, r.Stats.QPS, w.ID, r.ID, r.Variant)
			ch <- prometheus.MustNewConstMetric(descP99, prometheus.GaugeValue, ms(r.Stats.LatencyP99), w.ID, r.ID, r.Variant)
			ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy, w.ID, r.ID, r.Variant)
		}
		for s, n := range states {
			ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(n), w.ID, s)
		}
	}
}
