package workload

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
		{"diurnal default", "diurnal", 120 * time.Second,
			[]at{{0, 4}, {30 * time.Second, 42}, {60 * time.Second, 80}, {90 * time.Second, 42}, {120 * time.Second, 0}}},
		{"diurnal compressed", "diurnal:1h", time.Hour, []at{{0, 4}, {30 * time.Minute, 80}}},
		{"diurnal low high", "diurnal:10s:0:100", 10 * time.Second,
			[]at{{0, 0}, {2500 * time.Millisecond, 50}, {5 * time.Second, 100}, {10 * time.Second, 0}, {-time.Second, 0}}},
		{"bursty default", "bursty", 120 * time.Second, []at{{0, 10}, {120 * time.Second, 0}, {-time.Second, 0}}},
		{"bursty duration", "bursty:30s", 30 * time.Second, []at{{0, 10}}},
		{"bursty rates", "bursty:30s:1:2", 30 * time.Second, []at{{0, 1}}},
		{"bursty seed", "bursty:30s:0:500:7", 30 * time.Second, []at{{0, 0}, {30 * time.Second, 0}}},
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
		"csv-minute:/no/such/file", "trace:/no/such/file", "trace:", "diurnal:0s", "diurnal:10s:-1:5", "bursty:10s:1:x",
	} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) accepted it", spec)
		}
	}
	for _, tt := range []struct{ spec, want string }{
		{"diurnal:10s:4", "want diurnal[:DURATION[:LOW:HIGH]]"},
		{"diurnal:10s:4:80:1", "want diurnal[:DURATION[:LOW:HIGH]]"},
		{"diurnal:x", "want a positive duration"},
		{"bursty:10s:5", "want bursty[:DURATION[:BASE:PEAK[:SEED]]]"},
		{"bursty:10s:1:2:3:4", "want bursty[:DURATION[:BASE:PEAK[:SEED]]]"},
		{"bursty:10s:1:2:-3", "seed \"-3\": want a whole number"},
		{"bursty:-1s", "want a positive duration"},
	} {
		_, err := ParseSchedule(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), ScheduleHelp) {
			t.Errorf("ParseSchedule(%q) = %v; want an error saying %q and giving the syntax", tt.spec, err, tt.want)
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
			path := writeTemp(t, "load.csv", tt.text)
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

func TestCSVMinuteSchedule(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		counts []float64
		err    string // a part of the error; "" for none
	}{
		{"counts", "600\n# a comment\n\n3000\n0\n", []float64{600, 3000, 0}, ""},
		{"minute,count", "0,60\n1,120\n", []float64{60, 120}, ""},
		{"header", "minute,count\n0,6\n", []float64{6}, ""},
		{"count header", "queries\n6\n", []float64{6}, ""},
		{"fractional", "1.5\n", []float64{1.5}, ""},
		{"gap", "0,5\n2,10\n", nil, `line 2: minute "2": want 1 (minutes count from 0`},
		{"negative", "5\n-1\n", nil, `line 2: count "-1": want a number of queries in the minute`},
		{"negative first", "-1\n5\n", nil, `line 1: count "-1"`},
		{"not a number", "5\nfive\n", nil, `line 2: count "five"`},
		{"three fields", "0,1,2\n", nil, "line 1: \"0,1,2\": want COUNT or MINUTE,COUNT"},
		{"empty", "\n# nothing\n", nil, "no counts; write one per line (COUNT or MINUTE,COUNT)"},
		// The Azure Functions invocation traces: a row a function, a column
		// a minute; the load is every row's together.
		{"a row a function", "HashOwner,HashApp,HashFunction,Trigger,1,2,3\no1,a1,f1,http,5,0,2\no1,a1,f2,timer,1,1,1\no2,a2,f3,queue,0,0,0\n",
			[]float64{6, 1, 3}, ""},
		{"a short row", "HashFunction,1,2,3\nf1,1,2\n", nil, "line 2: 3 fields; the header numbers 3 minutes up to field 4"},
		{"a bad count", "HashFunction,1,2\nf1,1,x\n", nil, `line 2: minute 2: "x": want a number of queries in the minute`},
		{"minutes out of order", "HashFunction,1,3\nf1,1,2\n", nil, "or a header numbering the minutes (1,2,3,…)"},
		{"a header and no rows", "HashFunction,1,2\n", nil, "no counts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "load.csv", tt.text)
			s, err := ParseSchedule("csv-minute:" + path)
			if !errorAsWanted(t, err, tt.err) {
				return
			}
			if got, want := s.Duration(), time.Duration(len(tt.counts))*time.Minute; got != want {
				t.Errorf("Duration() = %v, want %v", got, want)
			}
			for i, c := range tt.counts {
				from := time.Duration(i) * time.Minute
				for _, at := range []time.Duration{from, from + 30*time.Second, from + time.Minute - time.Nanosecond} {
					if got := s.Rate(at); math.Abs(got-c/60) > 1e-12 {
						t.Errorf("Rate(%v) = %g, want %g/60", at, got, c)
					}
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

// writeTemp writes text to a file of this name in a temporary directory
// and returns its path.
func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// errorAsWanted fails t unless err is what a case wants: an error saying
// want, or none for an empty want. It reports whether there is a result
// to check (no error wanted).
func errorAsWanted(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatal(err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error %v, want one saying %q", err, want)
	}
	return want == ""
}
