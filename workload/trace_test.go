package workload

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func msAt(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestParseTrace(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []TraceArrival
		err  string // a part of the error; "" for none
	}{
		{"times", "0\n10\n10\n2500.5\n", []TraceArrival{{0, 0}, {msAt(10), 0}, {msAt(10), 0}, {msAt(2500.5), 0}}, ""},
		{"latencies", "1,50\n2\n3,0\n4,12.5\n", []TraceArrival{{msAt(1), 50}, {msAt(2), 0}, {msAt(3), 0}, {msAt(4), 12.5}}, ""},
		{"header and comments", "# recorded 2024-01-01\n\ntime_ms,latency_ms\n# warm-up\n 5 , 100 \n7\n",
			[]TraceArrival{{msAt(5), 100}, {msAt(7), 0}}, ""},
		{"one-field header", "ms\n0.25\n", []TraceArrival{{msAt(0.25), 0}}, ""},
		{"decreasing", "0\n20\n# a comment\n10\n", nil, "line 4: time 10 ms comes before the previous arrival's 20 ms; want times in non-decreasing order"},
		{"bad time", "0\n1\nsoon\n", nil, `line 3: time "soon": want the arrival's time in milliseconds since the start`},
		{"negative time", "-1\n", nil, `line 1: time "-1"`},
		{"bad latency", "0,fast\n", nil, `line 1: latency "fast": want the request's latency target in milliseconds`},
		{"negative latency", "0\n1,-5\n", nil, `line 2: latency "-5"`},
		{"three fields", "0\n1,2,3\n", nil, `line 2: "1,2,3": want TIME_MS or TIME_MS,LATENCY_MS`},
		{"empty", "# nothing\n\n", nil, "no arrivals; write one a line: TIME_MS or TIME_MS,LATENCY_MS"},
		{"only a header", "time_ms\n", nil, "no arrivals"},
		{"a second header", "time_ms\nlatency\n", nil, `line 2: time "latency"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTrace(strings.NewReader(tt.text))
			if !errorAsWanted(t, err, tt.err) {
				return
			}
			if !slices.Equal(tr.Arrivals, tt.want) {
				t.Errorf("arrivals %v, want %v", tr.Arrivals, tt.want)
			}
		})
	}
}

// A trace is a schedule of its arrivals per whole second.
func TestTraceSchedule(t *testing.T) {
	path := writeTemp(t, "trace.csv", "0\n100\n999.999\n1000\n1500\n3200,40\n")
	s := mustSchedule(t, "trace:"+path)
	tr, ok := s.(Trace)
	if !ok || len(tr.Arrivals) != 6 {
		t.Fatalf("trace:FILE gave %T %v, want the Trace of its 6 arrivals", s, s)
	}
	if read, err := ReadTrace(path); err != nil || !slices.Equal(read.Arrivals, tr.Arrivals) {
		t.Errorf("ReadTrace = %v, %v; want what ParseSchedule read", read, err)
	}
	if got, want := s.Duration(), 4*time.Second; got != want {
		t.Errorf("Duration() = %v, want %v: the end of the second of the last arrival", got, want)
	}
	for _, tt := range []struct {
		at   time.Duration
		want float64
	}{
		{-time.Millisecond, 0},
		{0, 3}, {999 * time.Millisecond, 3},
		{time.Second, 2}, {1999 * time.Millisecond, 2},
		{2500 * time.Millisecond, 0},
		{3 * time.Second, 1}, {4*time.Second - 1, 1},
		{4 * time.Second, 0},
	} {
		if got := s.Rate(tt.at); got != tt.want {
			t.Errorf("Rate(%v) = %g, want %g", tt.at, got, tt.want)
		}
	}
	// The load integrates to the number of arrivals.
	if got := MeanRate(s, 0, s.Duration()) * s.Duration().Seconds(); math.Abs(got-6) > 1e-9 {
		t.Errorf("∫rate = %g, want the 6 arrivals", got)
	}
	if got := (Trace{}).Duration(); got != 0 {
		t.Errorf("an empty trace lasts %v", got)
	}
	if got := (Trace{Arrivals: []TraceArrival{{At: 5 * time.Second}}}).Duration(); got != 6*time.Second {
		t.Errorf("an arrival at 5 s ends the trace at %v, want 6s", got)
	}
}

func TestTraceArrivals(t *testing.T) {
	tr := Trace{Arrivals: []TraceArrival{{0, 0}, {msAt(1.5), 20}, {msAt(1.5), 0}, {2 * time.Second, 0}}}
	it := NewTraceArrivals(tr)
	var got []time.Duration
	for {
		at, ok := it.Next()
		if !ok {
			break
		}
		got = append(got, at)
	}
	if want := []time.Duration{0, msAt(1.5), msAt(1.5), 2 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("replayed %v, want %v", got, want)
	}
	if _, ok := it.Next(); ok {
		t.Error("Next went on after the end")
	}
	it = NewTraceArrivals(tr)
	it.Next()
	if a, ok := it.NextArrival(); !ok || a.LatencyMs != 20 || a.Target() != 20*time.Millisecond {
		t.Errorf("NextArrival = %+v, %v; want the second arrival and its 20 ms target", a, ok)
	}
	long := Trace{Arrivals: make([]TraceArrival, 2000)}
	it = NewTraceArrivals(long)
	if allocs := testing.AllocsPerRun(1000, func() { it.Next() }); allocs != 0 {
		t.Errorf("Next allocates %g times", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { long.Rate(0) }); allocs != 0 {
		t.Errorf("Rate allocates %g times", allocs)
	}
}

// TestParsePublishedTraces: traces as they are published — a header naming
// the columns, columns the load does not need, times as dates or in
// seconds — are read without editing.
func TestParsePublishedTraces(t *testing.T) {
	tests := []struct {
		name, unit, text string
		want             []TraceArrival
		err              string
	}{
		{"dates, extra columns (an LLM inference trace)", "",
			"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n2023-11-16 18:15:50.9951690,879,12\n",
			[]TraceArrival{{0, 0}, {4314579 * time.Microsecond, 0}, {4314579 * time.Microsecond, 0}}, ""},
		{"RFC 3339 dates", "", "time\n2024-05-01T10:00:00Z\n2024-05-01T10:00:01.5Z\n",
			[]TraceArrival{{0, 0}, {1500 * time.Millisecond, 0}}, ""},
		{"seconds given, text columns (a chat trace)", "s",
			"Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n45.5,GPT-4,1087,230,1317,API log\n",
			[]TraceArrival{{5 * time.Second, 0}, {45500 * time.Millisecond, 0}}, ""},
		{"unit in the column's name, a target column", "",
			"request_id,arrival_time_s,slo_ms\nr1,0.5,200\nr2,1.25,100\n",
			[]TraceArrival{{500 * time.Millisecond, 200}, {1250 * time.Millisecond, 100}}, ""},
		{"a duration column is not the time", "", "duration_ms,start_time_ms\n30,10\n5,20\n",
			[]TraceArrival{{msAt(10), 0}, {msAt(20), 0}}, ""},
		{"the given unit wins", "us", "time_ms\n1500\n", []TraceArrival{{1500 * time.Microsecond, 0}}, ""},
		{"no time column", "", "app,func,count\na,f,3\n", nil,
			`line 1: header "app,func,count": no column names the arrival time (one whose name holds "time" or "arrival"); the columns are app, func, count`},
		{"dates then a number", "", "time\n2024-05-01T10:00:00Z\n12\n", nil, `line 3: time "12" is a number; the lines before gave dates`},
		{"dates out of order", "", "time\n2024-05-01T10:00:01Z\n2024-05-01T10:00:00Z\n", nil, "line 3: time 2024-05-01T10:00:00Z comes before the first arrival's"},
		{"seconds out of order", "s", "t\n2\n1\n", nil, "line 3: time 1 s comes before the previous arrival's 2 s"},
		{"a row short of the time", "", "id,time_ms\nx\n", nil, "line 2: 1 fields; the header puts the time in field 2"},
		{"an unknown unit", "h", "1\n", nil, `time unit "h": want one of ns, us, ms, s`},
		{"dates centuries apart", "", "t\n1800-01-01T00:00:00Z\n2200-01-01T00:00:00Z\n", nil, "line 3: time 2200-01-01T00:00:00Z is more than 1e+12 ms after the first arrival's"},
		{"a byte-order mark and CRLF", "", "\ufeff0\r\n1500\r\n", []TraceArrival{{0, 0}, {msAt(1500), 0}}, ""},
		{"out of range in seconds", "s", "2e9\n", nil, `line 1: time "2e9": want the arrival's time in seconds since the start, 0 to 1e+09, or a date`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTraceUnit(strings.NewReader(tt.text), tt.unit)
			if !errorAsWanted(t, err, tt.err) {
				return
			}
			if !slices.Equal(tr.Arrivals, tt.want) {
				t.Errorf("arrivals %v, want %v", tr.Arrivals, tt.want)
			}
		})
	}
	// trace:FILE:UNIT gives the unit; a colon that is not followed by one
	// is part of the file's name.
	path := writeTemp(t, "chat.csv", "Timestamp,Model\n0,a\n2,b\n")
	if s := mustSchedule(t, "trace:"+path+":s"); s.Duration() != 3*time.Second {
		t.Errorf("trace:%s:s lasts %v, want 3s (arrivals at 0 and 2 s)", path, s.Duration())
	}
	if s := mustSchedule(t, "trace:"+path); s.Duration() != time.Second {
		t.Errorf("trace:%s lasts %v, want 1s (arrivals at 0 and 2 ms)", path, s.Duration())
	}
	odd := writeTemp(t, "a:b.csv", "0\n1500\n")
	if s := mustSchedule(t, "trace:"+odd); s.Duration() != 2*time.Second {
		t.Errorf("trace:%s lasts %v, want 2s", odd, s.Duration())
	}
}
