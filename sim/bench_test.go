package sim

import (
	"testing"
	"time"
)

// BenchmarkSimulate is simulated queries per second of wall time: the
// steady high load (650 → 700 q/s) on four workers with infaas's
// autoscalers, 120 simulated seconds per iteration.
//
//	go test -run '^$' -bench Simulate -benchmem ./sim
func BenchmarkSimulate(b *testing.B) {
	cfg := testConfig(b, "infaas", "steady:120s")
	b.ReportAllocs()
	var queries int64
	start := time.Now()
	for range b.N {
		r, err := Run(cfg)
		if err != nil {
			b.Fatal(err)
		}
		queries += r.Sent
	}
	b.ReportMetric(float64(queries)/time.Since(start).Seconds(), "queries/s")
	b.ReportMetric(0, "ns/op")
}
