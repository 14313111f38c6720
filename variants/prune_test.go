package variants

import (
	"fmt"
	"strings"
	"testing"

	"github.com/infaas/infaas/catalog"
)

func costed(name string, acc, p99b1, p99max, qps float64, mem, file int64, cost float64, maxBatch int) Costed {
	lat := map[int]catalog.Latency{1: {P50: p99b1 / 2, P99: p99b1, Samples: 100}}
	if maxBatch > 1 {
		lat[maxBatch] = catalog.Latency{P50: p99max / 2, P99: p99max, Samples: 100}
	}
	return Costed{Variant: catalog.Variant{Name: name, Precision: FP32, OptLevel: "basic", Threads: 1, MaxBatch: maxBatch,
		Accuracy: acc, FileBytes: file, Profile: catalog.Profile{LatencyMs: lat, ThroughputQPS: qps, PeakMemoryBytes: mem}},
		CostPerHour: cost}
}

func TestPrune(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name    string
		in      []Costed
		kept    []string
		dropped map[string]string // name -> substring of reason
	}{
		{
			name: "faster and equal elsewhere dominates",
			in: []Costed{
				costed("slow", 95, 2, 2, 500, 10*mib, 1000, 0.05, 1),
				costed("fast", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
			},
			kept:    []string{"fast"},
			dropped: map[string]string{"slow": "dominated by fast"},
		},
		{
			name: "accuracy against speed is a trade-off",
			in: []Costed{
				costed("accurate", 98, 2, 2, 500, 10*mib, 1000, 0.05, 1),
				costed("fast", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
			},
			kept: []string{"accurate", "fast"},
		},
		{
			name: "cheaper but slower is a trade-off",
			in: []Costed{
				costed("t2", 95, 1, 1, 1000, 10*mib, 1000, 0.10, 1),
				costed("t1", 95, 2, 2, 500, 10*mib, 1000, 0.05, 1),
			},
			kept: []string{"t1", "t2"},
		},
		{
			name: "within noise everywhere: keep the preferred one",
			in: []Costed{
				costed("b", 95, 1.00, 1, 1000, 10*mib, 1000, 0.05, 1),
				costed("a", 95, 1.05, 1, 980, 10*mib, 1000, 0.05, 1),
			},
			kept:    []string{"a"},
			dropped: map[string]string{"b": "equivalent to a"},
		},
		{
			name: "larger max batch: more throughput but a longer full batch",
			in: []Costed{
				costed("b1", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
				costed("b16", 95, 1, 4, 4000, 10*mib, 1000, 0.05, 16),
			},
			kept: []string{"b1", "b16"},
		},
		{
			name: "smaller file alone is enough to survive",
			in: []Costed{
				costed("fp32", 95, 1, 1, 1000, 10*mib, 4000, 0.05, 1),
				costed("int8", 95, 1.5, 1.5, 700, 10*mib, 1000, 0.05, 1),
			},
			kept: []string{"fp32", "int8"},
		},
		{
			name: "higher throughput alone dominates",
			in: []Costed{
				costed("x", 95, 1, 1, 1000, 10*mib, 1000, 0.05, 1),
				costed("y", 95, 1, 1, 1500, 10*mib, 1000, 0.05, 1),
			},
			kept:    []string{"y"},
			dropped: map[string]string{"x": "throughput 1500/s vs 1000/s"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, dropped := Prune(tc.in, DefaultTolerance)
			var names []string
			for _, k := range kept {
				names = append(names, k.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.kept, ",") {
				t.Fatalf("kept %v, want %v (dropped %v)", names, tc.kept, dropped)
			}
			if len(dropped) != len(tc.dropped) {
				t.Fatalf("dropped %v, want %v", dropped, tc.dropped)
			}
			for _, d := range dropped {
				if want, ok := tc.dropped[d.Name]; !ok || !strings.Contains(d.Reason, want) {
					t.Errorf("dropped %s: %q, want reason containing %q", d.Name, d.Reason, want)
				}
			}
		})
	}
}

// TestPruneNeverDropsEverything: whatever the measurements, something survives,
// and every dropped variant names a kept-or-dropped variant that beat it.
func TestPruneNeverDropsEverything(t *testing.T) {
	for seed := 0; seed < 200; seed++ {
		var in []Costed
		for i := 0; i < 1+seed%12; i++ {
			x := float64((seed*31+i*17)%13 + 1)
			in = append(in, costed(string(rune('a'+i)), 90+float64(i%3), x, x*2, 1000/x, int64(x)*1<<20, int64(i%2+1)*1000, 0.05*float64(i%2+1), 1+i%2*7))
		}
		kept, dropped := Prune(in, DefaultTolerance)
		if len(kept) == 0 || len(kept)+len(dropped) != len(in) {
			t.Fatalf("seed %d: kept %d dropped %d of %d", seed, len(kept), len(dropped), len(in))
		}
	}
}

func TestThreadCountsAndBatches(t *testing.T) {
	for cores, want := range map[int]string{1: "[1]", 2: "[1 2]", 6: "[1 2 4 6]", 16: "[1 2 4 8 16]"} {
		if got := fmtInts(ThreadCounts(cores)); got != want {
			t.Errorf("ThreadCounts(%d) = %s, want %s", cores, got, want)
		}
	}
	if got := fmtInts(MaxBatches(0)); got != "[1 4 8 16 32]" {
		t.Errorf("dynamic batch: %s", got)
	}
	if got := fmtInts(MaxBatches(1)); got != "[1]" {
		t.Errorf("fixed batch 1: %s", got)
	}
}

func fmtInts(v []int) string { return fmt.Sprint(v) }
