package workload

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseFiles feeds arbitrary bytes to the file formats a user hands
// loadgen and simulate — a trace (in every unit) and per-second and
// per-minute counts: they never panic, and what they accept is a load
// that can be run: arrivals at non-negative, non-decreasing times with
// non-negative targets; steps with positive lengths and rates from 0 to
// the bound.
func FuzzParseFiles(f *testing.F) {
	for _, seed := range []string{
		"0\n10\n2500.5\n", "time_ms,latency_ms\n5,100\n7\n",
		"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n",
		"Timestamp,Model\n5,a\n45.5,b\n", "request_id,arrival_time_s,slo_ms\nr1,0.5,200\n",
		"\ufeff0\r\n1500\r\n", "HashOwner,HashApp,HashFunction,Trigger,1,2,3\no,a,f,http,5,0,2\n",
		"second,rate\n0,1\n1,2\n", "t\n1800-01-01T00:00:00Z\n2200-01-01T00:00:00Z\n", "minute,count\n0,6\n", "time\n2024-05-01T10:00:00Z\n12\n",
	} {
		f.Add(seed, uint8(0))
	}
	units := []string{"", "ns", "us", "ms", "s"}
	f.Fuzz(func(t *testing.T, text string, pick uint8) {
		unit := units[int(pick)%len(units)]
		if tr, err := ParseTraceUnit(strings.NewReader(text), unit); err == nil {
			if len(tr.Arrivals) == 0 || tr.Duration() <= 0 {
				t.Fatalf("a trace accepted with %d arrivals, lasting %v", len(tr.Arrivals), tr.Duration())
			}
			var prev time.Duration
			for i, a := range tr.Arrivals {
				if a.At < 0 || a.At < prev || !(a.LatencyMs >= 0) {
					t.Fatalf("arrival %d: %+v after %v", i, a, prev)
				}
				prev = a.At
			}
		}
		for _, f := range []stepFile{perSecond, perMinute} {
			steps, err := f.parse(strings.NewReader(text))
			if err != nil {
				continue
			}
			if len(steps) == 0 {
				t.Fatal("a schedule accepted with no steps")
			}
			for i, s := range steps {
				if s.For <= 0 || !(s.QPS >= 0 && s.QPS <= maxRate) {
					t.Fatalf("%s step %d: %+v", f.index, i, s)
				}
			}
		}
	})
}
