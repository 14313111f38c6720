package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/loadgen"
)

// The autoscaling tests serve a convolutional net slow enough (milliseconds
// per image) for a worker of one core to saturate at a few hundred queries
// a second: the zoo's models take microseconds, and the per-request
// overhead would saturate first.
const (
	convChannels = 96
	convLayers   = 3
	convDynamic  = true
)

// autoscaleArgs are serve flags with windows short enough for a test.
var autoscaleArgs = []string{"--class", "cpu-1", "--scale-up-window", "1s", "--scale-down-window", "3s",
	"--scale-cooldown", "2s", "--idle-unload", "-1s", "--log-level", "debug"}

// registerConvNet registers the slow net as architecture name and returns
// the most one replica of any of its variants sustains on cpu-1 in samples
// per second (the profiles' throughput, as the autoscaler reads it) and
// the least p99 at batch 1.
func registerConvNet(t *testing.T, s *server, name string) (capacity, p99 float64) {
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
		if p, ok := v.ProfileOn("cpu-1"); ok && v.Threads == 1 {
			p99 = min(p99, p.P99At(1))
			capacity = max(capacity, p.ThroughputQPS)
		}
	}
	if math.IsInf(p99, 1) || p99 <= 0 {
		t.Fatalf("no 1-thread variant profiled on cpu-1: %+v", vs)
	}
	t.Logf("%s: %d variants, least p99 %.2f ms at batch 1, up to %.0f samples/s per replica", name, len(vs), p99, capacity)
	for _, v := range vs {
		t.Logf("  %s: max batch %d, p99 %.2f ms at 1, %.2f ms at max, %.0f/s", v.Name, v.MaxBatch, v.Profile.P99At(1), v.Profile.P99At(v.MaxBatch), v.Profile.ThroughputQPS)
	}
	return capacity, p99
}

// eventsOf reads the whole event log.
func eventsOf(t *testing.T, s *server) []events.Event {
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
func runLoad(t *testing.T, s *server, schedule string, set loadgen.RequirementSet, onRow func(loadgen.Row)) (loadgen.Summary, []loadgen.Row) {
	t.Helper()
	sched, err := loadgen.ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	set.Weight = 1
	sender := loadgen.NewHTTPSender("http://"+s.addr, 64, 1)
	defer sender.Close()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, rows, err := loadgen.Run(c, loadgen.Config{Schedule: sched, ScheduleName: schedule, Seed: 1, Mix: loadgen.Mix{set}, Sender: sender, OnRow: onRow})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load %s: sent %d answered %d refused %d failed %d violations %d (%.1f%%) p50 %.1f ms p99 %.1f ms statuses %v",
		schedule, sum.Sent, sum.Answered, sum.Refused, sum.Failed, sum.Violations, 100*sum.ViolationRate, sum.P50Ms, sum.P99Ms, sum.Statuses)
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
	s := startServer(t, t.TempDir(), append([]string{"--workers", "cpu-1,cpu-1"}, autoscaleArgs...)...)
	capacity, p99 := registerConvNet(t, s, "convnet")
	low, high := max(2, 0.15*capacity), 1.1*capacity
	target := max(80, 20*p99)
	schedule := fmt.Sprintf("steps:%.0f@8s,%.0f@20s,%.0f@25s", low, high, low)
	start := time.Now()
	sum, _ := runLoad(t, s, schedule, loadgen.RequirementSet{Model: "convnet", LatencyMs: target}, nil)
	es := eventsOf(t, s)
	logEvents(t, es)

	up, ok := find(es, start, func(e events.Event) bool {
		return e.Source == "model-autoscaler" && (e.Action == "replicate" || e.Action == "switch")
	})
	if !ok {
		t.Fatalf("no scale-up at the peak (%.0f queries/s against %.0f per replica)\n%s", high, capacity, tail(s.log.String(), 60))
	}
	if !strings.Contains(up.Message, "options:") || !strings.Contains(up.Message, "$") || up.Numbers["cost_chosen_per_hour"] <= 0 || up.Numbers["demand_qps"] <= 0 {
		t.Errorf("the scale-up does not show its cost comparison: %s %v", up.Message, up.Numbers)
	}
	if _, ok := find(es, up.Time, func(e events.Event) bool {
		return e.Source == "model-autoscaler" && (e.Action == "unload" || e.Action == "downgrade")
	}); !ok {
		t.Errorf("no unload or downgrade in the trough after the scale-up at %s", up.Time.Format(time.TimeOnly))
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
