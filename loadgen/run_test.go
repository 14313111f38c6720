package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustSchedule(t *testing.T, spec string) Schedule {
	t.Helper()
	s, err := ParseSchedule(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Open loop: answers that take 2 s do not hold back arrivals.
func TestRunOpenLoop(t *testing.T) {
	f := &fakeSender{send: func(ctx context.Context, p *Prepared) Outcome {
		select {
		case <-time.After(2 * time.Second):
			return Outcome{Result: Answered, Status: "200"}
		case <-ctx.Done():
			return Outcome{Result: Failed, Status: "timeout"}
		}
	}}
	sum, rows, err := Run(context.Background(), Config{
		Schedule: mustSchedule(t, "constant:200:1s"),
		Arrivals: Fixed,
		Mix:      Mix{{Weight: 1, Model: "m"}},
		Sender:   f,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent < 150 {
		t.Errorf("sent %d in 1 s at 200 QPS while every answer takes 2 s; arrivals waited for answers", sum.Sent)
	}
	if sum.Answered != sum.Sent || sum.Dropped != 0 {
		t.Errorf("answered %d of %d, dropped %d", sum.Answered, sum.Sent, sum.Dropped)
	}
	if sum.P50Ms < 1900 {
		t.Errorf("p50 %.1f ms, want about 2000", sum.P50Ms)
	}
	if len(rows) < 3 || rows[0].Sent < 150 {
		t.Errorf("rows %+v: want the sends in second 0 and the answers 2 s later", rows)
	}
	if f.prepared.Load() != 1 {
		t.Errorf("prepared %d times, want once", f.prepared.Load())
	}
}

// At the in-flight bound, arrivals are dropped, not delayed.
func TestRunMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	var inFlight, peak atomic.Int64
	f := &fakeSender{send: func(ctx context.Context, p *Prepared) Outcome {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
		}
		select {
		case <-release:
			return Outcome{Result: Answered, Status: "200"}
		case <-ctx.Done():
			return Outcome{Result: Failed, Status: "timeout"}
		}
	}}
	var seen []Row // OnRow is called from one goroutine at a time, Run's last call before it returns
	sum, _, err := Run(context.Background(), Config{
		Schedule:    mustSchedule(t, "constant:100:500ms"),
		Arrivals:    Fixed,
		Mix:         Mix{{Weight: 1, Model: "m"}},
		Sender:      f,
		MaxInFlight: 5,
		OnRow: func(r Row) {
			seen = append(seen, r)
			// Second 0 closes after the schedule's last arrival.
			releaseOnce.Do(func() { close(release) })
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent+sum.Dropped != 50 || sum.Dropped < 40 || sum.Answered != sum.Sent {
		t.Errorf("sent %d, dropped %d, answered %d; want 50 arrivals, all but about 5 dropped, the sent answered",
			sum.Sent, sum.Dropped, sum.Answered)
	}
	if peak.Load() > 5 {
		t.Errorf("%d requests in flight at once, over the bound of 5", peak.Load())
	}
	for i, r := range seen {
		if r.Second != i {
			t.Fatalf("OnRow got second %d at position %d", r.Second, i)
		}
	}
	if len(seen) < 1 {
		t.Error("OnRow was never called")
	}
}

func TestRunMaxRequestsAndMix(t *testing.T) {
	f := &fakeSender{send: func(ctx context.Context, p *Prepared) Outcome {
		return Outcome{Result: Answered, Status: "200", Variant: p.Set.Model + ".v"}
	}}
	sum, rows, err := Run(context.Background(), Config{
		Schedule:    mustSchedule(t, "constant:400:10s"),
		Seed:        5,
		Mix:         Mix{{Weight: 1, Model: "a"}, {Weight: 1, Model: "b"}},
		Sender:      f,
		MaxRequests: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 100 {
		t.Errorf("sent %d, want the 100 of MaxRequests", sum.Sent)
	}
	if sum.Variants["a.v"]+sum.Variants["b.v"] != 100 || sum.Variants["a.v"] < 20 || sum.Variants["b.v"] < 20 {
		t.Errorf("variants %v: want both sets drawn", sum.Variants)
	}
	if len(sum.Sets) != 2 || sum.Sets[0].Sent+sum.Sets[1].Sent != 100 {
		t.Errorf("sets %+v", sum.Sets)
	}
	if len(rows) != 10 {
		t.Errorf("%d rows, want one per second of the schedule", len(rows))
	}
	total := 0
	for _, r := range rows {
		total += r.Sent
	}
	if total != 100 {
		t.Errorf("rows count %d sent", total)
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeSender{send: func(ctx context.Context, p *Prepared) Outcome {
		<-ctx.Done()
		return Outcome{Result: Failed, Status: "canceled"}
	}}
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	sum, _, err := Run(ctx, Config{
		Schedule: mustSchedule(t, "constant:20:1h"),
		Mix:      Mix{{Weight: 1, Model: "m"}},
		Sender:   f,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || time.Since(start) > 30*time.Second {
		t.Errorf("interrupted %v after %v", sum.Interrupted, time.Since(start))
	}
	if sum.Failed != sum.Sent || sum.Statuses["canceled"] != sum.Sent {
		t.Errorf("sent %d, failed %d, statuses %v", sum.Sent, sum.Failed, sum.Statuses)
	}
}

func TestRunTimeouts(t *testing.T) {
	var mu sync.Mutex
	got := map[string]time.Duration{}
	f := &fakeSender{send: func(ctx context.Context, p *Prepared) Outcome {
		d, _ := ctx.Deadline()
		mu.Lock()
		got[p.Set.Model] = time.Until(d)
		mu.Unlock()
		return Outcome{Result: Answered, Status: "200"}
	}}
	cfg := Config{
		Schedule: mustSchedule(t, "constant:100:1s"),
		Arrivals: Fixed,
		Mix:      Mix{{Weight: 1, Model: "none"}, {Weight: 1, Model: "tight", LatencyMs: 5}, {Weight: 1, Model: "loose", LatencyMs: 500}},
		Sender:   f,
	}
	if _, _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]time.Duration{"none": DefaultTimeout, "tight": time.Second, "loose": 5 * time.Second} {
		if d := got[model]; d > want || d < want-time.Second {
			t.Errorf("%s: timeout %v, want %v", model, d, want)
		}
	}
}

func TestRunConfigErrors(t *testing.T) {
	f := &fakeSender{send: answer("")}
	s := mustSchedule(t, "constant:1:1s")
	for name, cfg := range map[string]Config{
		"no schedule": {Mix: Mix{{Weight: 1, Model: "m"}}, Sender: f},
		"no sender":   {Schedule: s, Mix: Mix{{Weight: 1, Model: "m"}}},
		"no mix":      {Schedule: s, Sender: f},
		"arrivals":    {Schedule: s, Mix: Mix{{Weight: 1, Model: "m"}}, Sender: f, Arrivals: "bursty"},
		"negative":    {Schedule: s, Mix: Mix{{Weight: 1, Model: "m"}}, Sender: f, MaxInFlight: -1},
	} {
		if _, _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
}

func TestParams(t *testing.T) {
	set := RequirementSet{Model: "m", LatencyMs: 20, MinAccuracy: 97, Strict: true}
	if p := params(set); p["latency_ms"] != 20.0 || p["min_accuracy"] != 97.0 || p["strict"] != true || len(p) != 3 {
		t.Errorf("params = %v", p)
	}
}
