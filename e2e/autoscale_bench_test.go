package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/infaas/infaas/loadgen"
)

// BenchmarkAutoscaleFluctuating runs one fluctuating schedule — low, a
// peak above one replica's capacity, low again — live against `infaas
// serve` with two one-core workers, with autoscaling on and off, and
// reports what the load generator saw and what the replicas cost. With
// $INFAAS_BENCH_OUT set, each run's per-second CSV, summary JSON and plot
// are written there (docs/BENCHMARKS.md shows them).
//
//	go test -run '^$' -bench AutoscaleFluctuating -benchtime 1x ./e2e
func BenchmarkAutoscaleFluctuating(b *testing.B) {
	// The first run sizes the schedule and the target from its profile;
	// the second reuses them, so the two face the same load.
	var schedule string
	var target float64
	for _, mode := range []struct{ name, flag string }{{"autoscale", "--autoscale=true"}, {"static", "--autoscale=false"}} {
		b.Run(mode.name, func(b *testing.B) {
			for range b.N {
				benchFluctuating(b, mode.name, mode.flag, &schedule, &target)
			}
		})
	}
}

func benchFluctuating(b *testing.B, name, flag string, schedule *string, target *float64) {
	s := startServer(b, b.TempDir(), append([]string{"--workers", "cpu-1,cpu-1", flag}, autoscaleArgs...)...)
	capacity, p99 := registerConvNet(b, s, "convnet")
	if *schedule == "" {
		*schedule = fmt.Sprintf("steps:%.0f@15s,%.0f@30s,%.0f@30s", max(2, 0.15*capacity), 1.1*capacity, max(2, 0.15*capacity))
		*target = max(80, 20*p99)
	}

	// Replica cost: every second, what the ready replicas cost per hour.
	var mu sync.Mutex
	usd, peakReplicas := 0.0, 0
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-c.Done():
				return
			case <-tick.C:
			}
			ws, err := s.c.Workers(c)
			if err != nil {
				continue
			}
			perHour, n := 0.0, 0
			for _, w := range ws {
				for _, r := range w.Replicas {
					if r.State == "ready" {
						perHour += w.Hardware.CostPerHour(1)
						n++
					}
				}
			}
			mu.Lock()
			usd += perHour / 3600
			peakReplicas = max(peakReplicas, n)
			mu.Unlock()
		}
	}()
	sched, err := loadgen.ParseSchedule(*schedule)
	if err != nil {
		b.Fatal(err)
	}
	sender := loadgen.NewHTTPSender("http://"+s.addr, 64, 1)
	defer sender.Close()
	b.ResetTimer()
	sum, rows, err := loadgen.Run(c, loadgen.Config{Schedule: sched, ScheduleName: *schedule, Seed: 1,
		Mix: loadgen.Mix{{Weight: 1, Model: "convnet", LatencyMs: *target}}, Sender: sender})
	b.StopTimer()
	cancel()
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(100*sum.ViolationRate, "violations_%")
	b.ReportMetric(100*float64(sum.Refused)/float64(max(sum.Sent, 1)), "refused_%")
	b.ReportMetric(sum.P99Ms, "p99_ms")
	b.ReportMetric(sum.ThroughputQPS, "answered/s")
	b.ReportMetric(usd, "USD")
	b.ReportMetric(float64(peakReplicas), "peak_replicas")
	b.Logf("%s: %s\n%s", name, *schedule, loadgen.FormatSummary(sum))
	if dir := os.Getenv("INFAAS_BENCH_OUT"); dir != "" {
		var csv, js, png bytes.Buffer
		if err := loadgen.WriteCSV(&csv, rows); err != nil {
			b.Fatal(err)
		}
		if err := loadgen.WriteJSON(&js, sum); err != nil {
			b.Fatal(err)
		}
		if err := loadgen.WritePlot(&png, rows, sum); err != nil {
			b.Fatal(err)
		}
		for ext, buf := range map[string]*bytes.Buffer{"csv": &csv, "json": &js, "png": &png} {
			if err := os.WriteFile(filepath.Join(dir, "fluctuating-"+name+"."+ext), buf.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		var ev bytes.Buffer
		for _, e := range eventsOf(b, s) {
			ev.WriteString(e.String() + "\n")
		}
		if err := os.WriteFile(filepath.Join(dir, "fluctuating-"+name+".events"), ev.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
