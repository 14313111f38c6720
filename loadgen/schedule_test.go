package loadgen

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	type at struct {
		t   time.Duration
		qps float64
	}
	tests := []struct {
		name string
		spec string
		dur  time.Duration
		at   []at
	}{
		{"constant", "constant:50:30s", 30 * time.Second, []at{{0, 50}, {29 * time.Second, 50}, {30 * time.Second, 0}, {-time.Second, 0}}},
		{"steps", "steps:10@5s,100@10s,0@1s,20@2s", 18 * time.Second,
			[]at{{0, 10}, {4999 * time.Millisecond, 10}, {5 * time.Second, 100}, {15 * time.Second, 0}, {16 * time.Second, 20}, {18 * time.Second, 0}}},
		{"ramp up", "ramp:0:100:10s", 10 * time.Second, []at{{0, 0}, {5 * time.Second, 50}, {9 * time.Second, 90}, {10 * time.Second, 0}}},
		{"ramp down", "ramp:100:50:1m", time.Minute, []at{{0, 100}, {30 * time.Second, 75}}},
		{"flat default", "flat", 60 * time.Second, []at{{0, 4}, {59 * time.Second, 4}}},
		{"flat compressed", "flat:10s", 10 * time.Second, []at{{0, 4}, {9 * time.Second, 4}, {10 * time.Second, 0}}},
		{"steady", "steady:100s", 100 * time.Second, []at{{0, 650}, {50 * time.Second, 675}, {99 * time.Second, 699.5}}},
		{"fluctuating", "fluctuating:60s", 60 * time.Second,
			[]at{{0, 4}, {15 * time.Second, 42}, {30 * time.Second, 80}, {45 * time.Second, 42}, {60 * time.Second, 0}}},
		{"fluctuating default", "fluctuating", 120 * time.Second, []at{{60 * time.Second, 80}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Duration(); got != tt.dur {
				t.Errorf("Duration() = %v, want %v", got, tt.dur)
			}
			for _, a := range tt.at {
				if got := s.Rate(a.t); math.Abs(got-a.qps) > 1e-9 {
					t.Errorf("Rate(%v) = %g, want %g", a.t, got, a.qps)
				}
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, spec := range []string{
		"", "poisson:10", "constant", "constant:10", "constant:-1:10s", "constant:abc:10s", "constant:10:0s",
		"constant:10:forever", "steps:", "steps:10", "steps:10@", "ramp:1:2", "ramp:1:2:x", "flat:-5s", "csv:/no/such/file",
	} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) accepted it", spec)
		}
	}
	_, err := ParseSchedule("wave:1")
	if err == nil || !strings.Contains(err.Error(), "constant") || !strings.Contains(err.Error(), "fluctuating") {
		t.Errorf("an unknown kind's error should list the kinds: %v", err)
	}
}

func TestCSVSchedule(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		rates []float64
		bad   bool
	}{
		{"rates", "5\n10\n\n# a comment\n2.5\n", []float64{5, 10, 2.5}, false},
		{"second,rate", "0,5\n1,10\n2,0\n", []float64{5, 10, 0}, false},
		{"header", "second,rate\n0,1\n1,2\n", []float64{1, 2}, false},
		{"rate header", "qps\n7\n", []float64{7}, false},
		{"gap", "0,5\n2,10\n", nil, true},
		{"negative", "5\n-1\n", nil, true},
		{"three fields", "0,1,2\n", nil, true},
		{"empty", "\n# nothing\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "load.csv")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := ParseSchedule("csv:" + path)
			if tt.bad {
				if err == nil {
					t.Fatalf("accepted %q", tt.text)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := s.Duration(), time.Duration(len(tt.rates))*time.Second; got != want {
				t.Errorf("Duration() = %v, want %v", got, want)
			}
			for i, r := range tt.rates {
				if got := s.Rate(time.Duration(i)*time.Second + 500*time.Millisecond); got != r {
					t.Errorf("second %d: rate %g, want %g", i, got, r)
				}
			}
		})
	}
}

func TestMeanRate(t *testing.T) {
	s, err := ParseSchedule("ramp:0:100:10s")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		from, to time.Duration
		want     float64
	}{
		{0, time.Second, 5},
		{9 * time.Second, 10 * time.Second, 95},
		{0, 10 * time.Second, 50},
		{10 * time.Second, 11 * time.Second, 0},
		{time.Second, time.Second, 0},
	} {
		if got := MeanRate(s, tt.from, tt.to); math.Abs(got-tt.want) > 0.01 {
			t.Errorf("MeanRate(%v, %v) = %g, want %g", tt.from, tt.to, got, tt.want)
		}
	}
}
