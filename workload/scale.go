package workload

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Scale plays s speed times faster with its rates times load: a day-long
// published trace in a few minutes, or its absolute load fitted to the
// cluster at hand. A rate schedule keeps its shape (a minute of 600
// queries becomes, at speed 60, a second of 600 queries, and at load 0.1
// as well, a second of 60); a trace keeps its arrivals' order and spacing, its times
// divided by speed, and is thinned evenly to a load below 1 (every other
// arrival at 0.5) — it can be thinned, not multiplied.
func Scale(s Schedule, speed, load float64) (Schedule, error) {
	if !(speed > 0 && speed <= maxScale) {
		return nil, fmt.Errorf("speed %v: want a number above 0, at most %g (2 plays the schedule twice as fast)", speed, maxScale)
	}
	if !(load > 0 && load <= maxScale) {
		return nil, fmt.Errorf("load %v: want a number above 0, at most %g (0.5 halves every rate)", load, maxScale)
	}
	tooFast := func(qps float64) error {
		if qps > maxRate {
			return fmt.Errorf("speed %v × load %v takes a rate of %g queries a second to %g, over the 10,000,000 a schedule may ask for", speed, load, qps/(speed*load), qps)
		}
		return nil
	}
	at := func(d time.Duration) time.Duration { return time.Duration(math.Round(float64(d) / speed)) }
	switch x := s.(type) {
	case Steps:
		out := make(Steps, len(x))
		for i, st := range x {
			out[i] = Step{QPS: st.QPS * speed * load, For: at(st.For)}
			if err := tooFast(out[i].QPS); err != nil {
				return nil, err
			}
		}
		return out, nil
	case Linear:
		out := make(Linear, len(x))
		for i, p := range x {
			out[i] = Point{At: at(p.At), QPS: p.QPS * speed * load}
			if err := tooFast(out[i].QPS); err != nil {
				return nil, err
			}
		}
		return out, nil
	case Trace:
		if load > 1 {
			return nil, fmt.Errorf("load %v: a trace replays its own arrivals; it can be thinned (a load up to 1), not multiplied — use a rate schedule (csv:, csv-minute:) to raise it", load)
		}
		out := Trace{Arrivals: make([]TraceArrival, 0, int(float64(len(x.Arrivals))*load)+1)}
		for i, a := range x.Arrivals {
			// Keep arrival i when the kept count steps up: evenly spaced,
			// deterministic, load × n of n.
			if math.Floor(float64(i+1)*load) > math.Floor(float64(i)*load) {
				out.Arrivals = append(out.Arrivals, TraceArrival{At: at(a.At), LatencyMs: a.LatencyMs})
			}
		}
		if len(out.Arrivals) == 0 {
			return nil, fmt.Errorf("load %v keeps none of the trace's %d arrivals", load, len(x.Arrivals))
		}
		return out, nil
	}
	return scaled{of: s, speed: speed, load: load}, nil
}

// maxScale bounds a speed and a load: a day played in a tenth of a second,
// a load a million times a trace's.
const maxScale = 1e6

// scaled is Scale for a schedule of any other kind.
type scaled struct {
	of          Schedule
	speed, load float64
}

func (s scaled) Rate(t time.Duration) float64 {
	return s.load * s.speed * s.of.Rate(time.Duration(float64(t)*s.speed))
}

func (s scaled) Duration() time.Duration {
	return time.Duration(math.Round(float64(s.of.Duration()) / s.speed))
}

// scale: wraps another schedule, so it joins scheduleKinds at init (it
// parses its inner schedule through them).
func init() { scheduleKinds["scale"] = parseScale }

// parseScale reads "SPEED:LOAD:SCHEDULE".
func parseScale(arg string) (Schedule, error) {
	parts := strings.SplitN(arg, ":", 3)
	if len(parts) < 3 || parts[2] == "" {
		return nil, errors.New("want scale:SPEED:LOAD:SCHEDULE, e.g. scale:60:0.1:csv-minute:day.csv")
	}
	speed, err := strconv.ParseFloat(parts[0], 64)
	if err != nil {
		return nil, fmt.Errorf("speed %q: want a number above 0", parts[0])
	}
	load, err := strconv.ParseFloat(parts[1], 64)
	if err != nil {
		return nil, fmt.Errorf("load %q: want a number above 0", parts[1])
	}
	inner, err := ParseSchedule(parts[2])
	if err != nil {
		return nil, err
	}
	return Scale(inner, speed, load)
}
