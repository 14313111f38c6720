package workload

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestScale: a schedule played faster keeps its shape and, at load 1, its
// number of queries; load multiplies the rates; a trace keeps its order
// and is thinned evenly.
func TestScale(t *testing.T) {
	steps := mustSchedule(t, "steps:10@60s,30@60s")
	s, err := Scale(steps, 60, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Duration() != 2*time.Second || s.Rate(500*time.Millisecond) != 600 || s.Rate(1500*time.Millisecond) != 1800 {
		t.Errorf("steps 60× faster: %v long, rates %g and %g; want 2s, 600 and 1800", s.Duration(), s.Rate(500*time.Millisecond), s.Rate(1500*time.Millisecond))
	}
	total := func(s Schedule) float64 { return MeanRate(s, 0, s.Duration()) * s.Duration().Seconds() }
	if a, b := total(steps), total(s); math.Abs(a-b) > 1e-6 {
		t.Errorf("queries: %g before, %g 60× faster; want the same", a, b)
	}
	half := mustSchedule(t, "scale:1:0.5:ramp:0:100:10s")
	if half.Duration() != 10*time.Second || math.Abs(half.Rate(5*time.Second)-25) > 0.01 {
		t.Errorf("ramp at half load: %v long, %g at 5s; want 10s and 25", half.Duration(), half.Rate(5*time.Second))
	}
	// Any other kind of schedule (a compressed day here) through the wrapper.
	day := mustSchedule(t, "diurnal:120s:4:80")
	fast := mustSchedule(t, "scale:4:2:diurnal:120s:4:80")
	if fast.Duration() != 30*time.Second || math.Abs(fast.Rate(15*time.Second)-8*day.Rate(60*time.Second)) > 1e-9 {
		t.Errorf("diurnal 4× faster at load 2: %v long, %g at 15s; want 30s and 8 × %g", fast.Duration(), fast.Rate(15*time.Second), day.Rate(60*time.Second))
	}

	tr := Trace{Arrivals: []TraceArrival{{0, 0}, {msAt(100), 50}, {msAt(200), 0}, {msAt(300), 0}, {msAt(400), 20}, {msAt(500), 0}}}
	got, err := Scale(tr, 2, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := []TraceArrival{{msAt(50), 50}, {msAt(150), 0}, {msAt(250), 0}}
	if g := got.(Trace).Arrivals; len(g) != len(want) || g[0] != want[0] || g[1] != want[1] || g[2] != want[2] {
		t.Errorf("trace 2× faster, half kept: %v, want %v", g, want)
	}
	for _, tt := range []struct {
		s           Schedule
		speed, load float64
		err         string
	}{
		{steps, 0, 1, "speed 0: want a number above 0"},
		{steps, math.Inf(1), 1, "speed +Inf"},
		{steps, math.NaN(), 1, "speed NaN"},
		{steps, 1e5, 100, "takes a rate of 10 queries a second to 1e+08"},
		{steps, 1, -1, "load -1: want a number above 0"},
		{tr, 1, 2, "a trace replays its own arrivals; it can be thinned"},
		{tr, 1, 0.01, "keeps none of the trace's 6 arrivals"},
	} {
		if _, err := Scale(tt.s, tt.speed, tt.load); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Scale(%T, %v, %v) = %v; want an error saying %q", tt.s, tt.speed, tt.load, err, tt.err)
		}
	}
	for spec, want := range map[string]string{
		"scale:60:1":           "want scale:SPEED:LOAD:SCHEDULE",
		"scale:x:1:flat":       `speed "x"`,
		"scale:1:y:flat":       `load "y"`,
		"scale:1:1:nonsense:1": "nonsense",
	} {
		if _, err := ParseSchedule(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSchedule(%q) = %v; want an error saying %q", spec, err, want)
		}
	}
}
