package workload

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// ArrivalKind is how arrivals are spaced.
type ArrivalKind string

const (
	// Poisson arrivals: exponential gaps whose mean follows the schedule's
	// rate (a non-homogeneous Poisson process).
	Poisson ArrivalKind = "poisson"
	// Fixed arrivals: evenly spaced at the schedule's rate.
	Fixed ArrivalKind = "fixed"
	// Replayed arrivals: a Trace's, at their recorded times. Run replays a
	// Trace schedule whatever its Config.Arrivals says, and its summary
	// says Replayed; ParseArrivalKind does not accept it.
	Replayed ArrivalKind = "trace"
)

// ParseArrivalKind reads "poisson" or "fixed".
func ParseArrivalKind(s string) (ArrivalKind, error) {
	switch k := ArrivalKind(s); k {
	case Poisson, Fixed:
		return k, nil
	}
	return "", fmt.Errorf("arrivals %q: use poisson or fixed", s)
}

// integrationStep bounds the step over which a schedule's rate is taken as
// constant when arrivals are placed.
const integrationStep = time.Millisecond

// Arrivals places the arrivals of a schedule in time. It is a pure,
// deterministic sequence for a given schedule, kind and random source: the
// run consumes it, and tests read it without a clock.
//
// The k-th arrival is where the schedule's cumulative load Λ(t) = ∫rate
// reaches the sum of k gaps: exponential gaps of mean 1 for Poisson, gaps
// of 1 (the first ½, so that a constant rate r over d sends r·d) for Fixed.
type Arrivals struct {
	sched Schedule
	kind  ArrivalKind
	rng   *rand.Rand
	end   time.Duration

	steps  stepCursor   // when sched is Steps: its rate, read in time order
	linear linearCursor // when sched is Linear: likewise

	t    time.Duration // where the integration stands
	acc  float64       // Λ(t) − Λ(the last arrival)
	gap  float64       // Λ still to cover before the next arrival
	done bool
}

// NewArrivals returns the arrivals of s; rng draws Poisson gaps (unused for
// Fixed).
func NewArrivals(s Schedule, kind ArrivalKind, rng *rand.Rand) *Arrivals {
	a := &Arrivals{sched: s, kind: kind, rng: rng, end: s.Duration()}
	a.steps.steps, _ = s.(Steps)
	a.linear.points, _ = s.(Linear)
	if kind == Fixed {
		a.gap = 0.5
	} else {
		a.gap = rng.ExpFloat64()
	}
	return a
}

// Next returns the time of the next arrival since the start, or false when
// the schedule ends before it.
func (a *Arrivals) Next() (time.Duration, bool) {
	for !a.done {
		stepEnd := min(a.t+integrationStep, a.end)
		if stepEnd <= a.t {
			a.done = true
			break
		}
		width := stepEnd - a.t
		r := a.rate(a.t + width/2)
		area := r * width.Seconds()
		if r > 0 && a.acc+area >= a.gap {
			at := a.t + time.Duration((a.gap-a.acc)/r*float64(time.Second))
			at = min(max(at, a.t), stepEnd)
			// Continue from the arrival: the rest of this step counts
			// toward the next gap.
			a.t, a.acc = at, 0
			a.gap = a.nextGap()
			return at, true
		}
		a.acc += area
		a.t = stepEnd
	}
	return 0, false
}

// rate is the schedule's rate at t; the integration reads it at times
// that never decrease.
func (a *Arrivals) rate(t time.Duration) float64 {
	switch {
	case a.steps.steps != nil:
		return a.steps.rate(t)
	case a.linear.points != nil:
		return a.linear.rate(t)
	}
	return a.sched.Rate(t)
}

// stepCursor reads a Steps schedule's rate at times that never decrease,
// in O(1) amortised time rather than Steps.Rate's O(len(steps)): it keeps
// the step it stands in.
type stepCursor struct {
	steps Steps
	i     int           // the current step
	start time.Duration // where it starts
}

func (c *stepCursor) rate(t time.Duration) float64 {
	if t < c.start {
		return c.steps.Rate(t) // not in time order after all
	}
	for c.i < len(c.steps) && t-c.start >= c.steps[c.i].For {
		c.start += c.steps[c.i].For
		c.i++
	}
	if c.i == len(c.steps) {
		return 0
	}
	return c.steps[c.i].QPS
}

// linearCursor reads a Linear schedule's rate at times that never
// decrease without Linear.Rate's binary search: it keeps the first point
// at or after the last time read. Its rates are Linear.Rate's.
type linearCursor struct {
	points Linear
	i      int
	last   time.Duration
}

func (c *linearCursor) rate(t time.Duration) float64 {
	l := c.points
	if t < c.last || t < 0 || t >= l.Duration() {
		return l.Rate(t) // not in time order after all, or outside
	}
	c.last = t
	for c.i < len(l) && l[c.i].At < t {
		c.i++
	}
	return l.rateBefore(c.i, t)
}

func (a *Arrivals) nextGap() float64 {
	if a.kind == Fixed {
		return 1
	}
	return a.rng.ExpFloat64()
}
