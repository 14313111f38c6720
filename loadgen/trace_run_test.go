package loadgen

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Run replays a trace's times and sends each arrival with its own target.
func TestRunReplaysTrace(t *testing.T) {
	// Arrivals every 10 ms, with no target, 1 ms, 10 s, no target, ...
	var trace strings.Builder
	for i := range 15 {
		fmt.Fprintf(&trace, "%d%s\n", 10*i, []string{"", ",1", ",10000"}[i%3])
	}
	sched := mustSchedule(t, "trace:"+writeTemp(t, "trace.csv", trace.String()))

	var mu sync.Mutex
	targets := map[float64]int{}
	timeouts := map[float64]time.Duration{}
	f := &fakeSender{send: func(ctx context.Context, p *Prepared) Outcome {
		mu.Lock()
		targets[p.Set.LatencyMs]++
		timeouts[p.Set.LatencyMs] = p.Timeout
		mu.Unlock()
		time.Sleep(3 * time.Millisecond) // over the 1 ms target, far under 10 s
		return Outcome{Result: Answered, Status: "200"}
	}}
	sum, rows, err := Run(context.Background(), Config{
		Schedule: sched,
		Arrivals: Fixed, // ignored: a trace is replayed
		Mix:      Mix{{Weight: 1, Model: "a"}, {Weight: 1, Model: "b"}},
		Sender:   f,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 15 || sum.Answered != 15 || sum.Arrivals != Replayed {
		t.Errorf("sent %d, answered %d, arrivals %q; want the trace's 15, replayed", sum.Sent, sum.Answered, sum.Arrivals)
	}
	if want := map[float64]int{0: 5, 1: 5, 10000: 5}; !maps.Equal(targets, want) {
		t.Errorf("requests by target %v, want %v", targets, want)
	}
	if sum.TightestTargetMs != 1 {
		t.Errorf("tightest target %g ms, want the trace's 1 ms", sum.TightestTargetMs)
	}
	if sum.Violations != 5 {
		t.Errorf("%d violations, want the 5 requests with a 1 ms target", sum.Violations)
	}
	if timeouts[1] != minTimeout || timeouts[10000] != 100*time.Second || timeouts[0] != DefaultTimeout {
		t.Errorf("timeouts %v: want each target's", timeouts)
	}
	// Each set once as is, and once for each of the 2 targets.
	if got := f.prepared.Load(); got != 2*3 {
		t.Errorf("prepared %d times, want 6", got)
	}
	if len(rows) == 0 || rows[0].Offered != 15 {
		t.Errorf("rows %+v, want the first second to offer the 15 arrivals", rows)
	}

	// Too many distinct targets is an error before any load.
	var many strings.Builder
	for i := range maxTraceTargets + 1 {
		fmt.Fprintf(&many, "0,%d\n", i+1)
	}
	tr, err := ParseTrace(strings.NewReader(many.String()))
	if err != nil {
		t.Fatal(err)
	}
	f = &fakeSender{send: answer("")}
	if _, _, err := Run(context.Background(), Config{Schedule: tr, Mix: Mix{{Weight: 1, Model: "m"}}, Sender: f}); err == nil ||
		!strings.Contains(err.Error(), "distinct latency targets") || f.sent.Load() != 0 {
		t.Errorf("Run with %d targets: %v after %d sends; want an error before any", maxTraceTargets+1, err, f.sent.Load())
	}
}

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
