package workload

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TraceArrival is one recorded arrival.
type TraceArrival struct {
	// At is the time of the arrival since the start.
	At time.Duration
	// LatencyMs is the request's own latency target in milliseconds; 0:
	// none given (the mix's target holds).
	LatencyMs float64
}

// Target is the arrival's latency target, 0 for none.
func (a TraceArrival) Target() time.Duration {
	return time.Duration(a.LatencyMs * float64(time.Millisecond))
}

// Trace is a recording of explicit arrivals, in non-decreasing time order
// (ParseTrace checks it). NewTraceArrivals replays the exact times; as a
// Schedule, a trace is its load second by second, for plots, reports and
// the generated arrival processes.
type Trace struct {
	Arrivals []TraceArrival
}

var _ Schedule = Trace{}

// Rate implements Schedule: the number of arrivals in the whole second
// holding t (from ⌊t⌋ inclusive to ⌊t⌋+1s exclusive), per second. It
// searches the arrivals: O(log n), allocation-free.
func (tr Trace) Rate(t time.Duration) float64 {
	if t < 0 || t >= tr.Duration() {
		return 0
	}
	from := t.Truncate(time.Second)
	return float64(tr.firstAt(from+time.Second) - tr.firstAt(from))
}

// Duration implements Schedule: the end of the whole second that holds
// the last arrival (0 for no arrivals), so that every arrival falls within
// the schedule, every second of it is a full bucket of Rate, and the
// integral of Rate over the schedule is the number of arrivals.
func (tr Trace) Duration() time.Duration {
	if len(tr.Arrivals) == 0 {
		return 0
	}
	return tr.Arrivals[len(tr.Arrivals)-1].At.Truncate(time.Second) + time.Second
}

// firstAt is the index of the first arrival at or after t.
func (tr Trace) firstAt(t time.Duration) int {
	i, _ := slices.BinarySearchFunc(tr.Arrivals, t, func(a TraceArrival, t time.Duration) int {
		return compareDurations(a.At, t)
	})
	return i
}

// TraceArrivals replays a trace's arrivals, in order, at their recorded
// times: the counterpart of Arrivals for a trace. Next is O(1) and
// allocation-free.
type TraceArrivals struct {
	arrivals []TraceArrival
	next     int
}

// NewTraceArrivals returns the replay of tr from its first arrival.
func NewTraceArrivals(tr Trace) *TraceArrivals {
	return &TraceArrivals{arrivals: tr.Arrivals}
}

// Next returns the time of the next arrival since the start, or false when
// the trace has no more.
func (a *TraceArrivals) Next() (time.Duration, bool) {
	x, ok := a.NextArrival()
	return x.At, ok
}

// NextArrival is Next with the arrival's latency target.
func (a *TraceArrivals) NextArrival() (TraceArrival, bool) {
	if a.next >= len(a.arrivals) {
		return TraceArrival{}, false
	}
	x := a.arrivals[a.next]
	a.next++
	return x, true
}

// traceSyntax is a trace line's syntax.
const traceSyntax = "TIME_MS or TIME_MS,LATENCY_MS (milliseconds since the start)"

// maxTraceMs bounds the times and targets of a trace, in milliseconds
// (about 31 years; a time.Duration holds 292).
const maxTraceMs = 1e12

// ReadTrace reads a trace from a file, as ParseTrace.
func ReadTrace(path string) (Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return Trace{}, err
	}
	defer f.Close()
	return ParseTrace(f)
}

// ParseTrace reads a trace: one arrival a line, its time in milliseconds
// since the start (fractions allowed), optionally followed by
// ",LATENCY_MS", the request's latency target (0: none). Times must not
// decrease from line to line. Blank lines, lines starting with # and a
// header (a first line whose first field is not a number) are ignored.
// An error names the line and what it should hold.
func ParseTrace(r io.Reader) (Trace, error) {
	var tr Trace
	err := eachRecord(r, func(line int, first bool, fields []string) error {
		if len(fields) > 2 {
			return fmt.Errorf("line %d: %q: want %s", line, strings.Join(fields, ","), traceSyntax)
		}
		at, err := parseMs(fields[0])
		if errors.Is(err, strconv.ErrSyntax) && first {
			return nil // a header: not a number
		}
		if err != nil {
			return fmt.Errorf("line %d: time %q: want the arrival's time in milliseconds since the start, 0 to %g", line, strings.TrimSpace(fields[0]), maxTraceMs)
		}
		var lat float64
		if len(fields) == 2 {
			if lat, err = parseMs(fields[1]); err != nil {
				return fmt.Errorf("line %d: latency %q: want the request's latency target in milliseconds, 0 (none) to %g", line, strings.TrimSpace(fields[1]), maxTraceMs)
			}
		}
		t := time.Duration(math.Round(at * float64(time.Millisecond)))
		if n := len(tr.Arrivals); n > 0 && t < tr.Arrivals[n-1].At {
			return fmt.Errorf("line %d: time %s ms comes before the previous arrival's %g ms; want times in non-decreasing order",
				line, strings.TrimSpace(fields[0]), ms(tr.Arrivals[n-1].At))
		}
		tr.Arrivals = append(tr.Arrivals, TraceArrival{At: t, LatencyMs: lat})
		return nil
	})
	if err != nil {
		return Trace{}, err
	}
	if len(tr.Arrivals) == 0 {
		return Trace{}, errors.New("no arrivals; write one a line: " + traceSyntax)
	}
	return tr, nil
}

// parseMs reads a number of milliseconds, 0 to maxTraceMs; what is not a
// number at all is a strconv.ErrSyntax.
func parseMs(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, err
	}
	if !(f >= 0 && f <= maxTraceMs) {
		return 0, errors.New("out of range")
	}
	return f, nil
}
