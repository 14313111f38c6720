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
const traceSyntax = "TIME_MS or TIME_MS,LATENCY_MS (milliseconds since the start), or a header naming the columns"

// maxTraceMs bounds the times and targets of a trace, in milliseconds
// (about 31 years; a time.Duration holds 292).
const maxTraceMs = 1e12

// TraceUnits are the units a trace's numeric times may be given in
// (TraceOptions.Unit; a header's column name may say too: "time_s").
var TraceUnits = map[string]time.Duration{"ns": time.Nanosecond, "us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}

// ReadTrace reads a trace from a file, as ParseTrace.
func ReadTrace(path string) (Trace, error) {
	return ReadTraceUnit(path, "")
}

// ReadTraceUnit reads a trace from a file whose numeric times are in unit
// (a key of TraceUnits; "": milliseconds, or what the time column's name
// says).
func ReadTraceUnit(path, unit string) (Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return Trace{}, err
	}
	defer f.Close()
	return ParseTraceUnit(f, unit)
}

// ParseTrace reads a trace: one arrival a line, its time in milliseconds
// since the start (fractions allowed), optionally followed by
// ",LATENCY_MS", the request's latency target (0: none). Times must not
// decrease from line to line. Blank lines and lines starting with # are
// ignored.
//
// A first line whose first field is neither a number nor a date is a
// header, and it names the columns, so that a published trace can be read
// as it is: the time is the first column whose name holds "time" or
// "arrival" (TIMESTAMP, arrival_time, time_ms; not one that also names a
// latency, a response or a duration), the latency target the first whose
// name holds "latency", "slo", "deadline" or "target"; every other column
// is ignored. A time is a number — milliseconds, unless the column's name
// ends in a unit (time_s, timestamp_us) or ParseTraceUnit is given one —
// or a date and time (2023-11-16 18:15:46.6805900, RFC 3339), in which case
// each arrival is timed from the first. An error names the line and what
// it should hold.
func ParseTrace(r io.Reader) (Trace, error) { return ParseTraceUnit(r, "") }

// ParseTraceUnit is ParseTrace with the numeric times in unit (a key of
// TraceUnits; "" as ParseTrace).
func ParseTraceUnit(r io.Reader, unit string) (Trace, error) {
	scale, ok := TraceUnits[unit]
	if unit != "" && !ok {
		return Trace{}, fmt.Errorf("time unit %q: want one of ns, us, ms, s", unit)
	}
	var (
		tr         Trace
		timeCol    = 0
		latCol     = 1
		named      bool      // a header named the columns
		dated      bool      // the times are dates
		origin     time.Time // the first date
		unitName   = "milliseconds"
		unitScale  = time.Millisecond
		unitForced = unit != ""
		prev       string // the previous arrival's time, as written
	)
	if unitForced {
		unitScale, unitName = scale, unitWords[unit]
	}
	err := eachRecord(r, func(line int, first bool, fields []string) error {
		if first && isHeader(fields[0]) {
			cols, err := traceColumns(fields)
			if err != nil {
				return fmt.Errorf("line %d: header %q: %w", line, strings.Join(fields, ","), err)
			}
			timeCol, latCol, named = cols.time, cols.latency, true
			if !unitForced && cols.unit != "" {
				unitScale, unitName = TraceUnits[cols.unit], unitWords[cols.unit]
			}
			return nil
		}
		if !named && len(fields) > 2 {
			return fmt.Errorf("line %d: %q: want %s", line, strings.Join(fields, ","), traceSyntax)
		}
		if timeCol >= len(fields) {
			return fmt.Errorf("line %d: %d fields; the header puts the time in field %d", line, len(fields), timeCol+1)
		}
		text := strings.TrimSpace(fields[timeCol])
		var t time.Duration
		if d, ok := parseDate(text); ok {
			if len(tr.Arrivals) > 0 && !dated {
				return fmt.Errorf("line %d: time %q is a date; the lines before gave numbers", line, text)
			}
			if !dated {
				dated, origin = true, d
			}
			t = d.Sub(origin)
			if float64(t) > maxTraceMs*float64(time.Millisecond) {
				return fmt.Errorf("line %d: time %s is more than %g ms after the first arrival's %s", line, text, maxTraceMs, origin.Format(time.RFC3339Nano))
			}
			if t < 0 {
				return fmt.Errorf("line %d: time %s comes before the first arrival's %s; want times in non-decreasing order",
					line, text, origin.Format(time.RFC3339Nano))
			}
		} else {
			v, err := strconv.ParseFloat(text, 64)
			if err == nil && dated {
				return fmt.Errorf("line %d: time %q is a number; the lines before gave dates", line, text)
			}
			limit := maxTraceMs * float64(time.Millisecond) / float64(unitScale)
			if err != nil || !(v >= 0 && v <= limit) {
				return fmt.Errorf("line %d: time %q: want the arrival's time in %s since the start, 0 to %g, or a date", line, text, unitName, limit)
			}
			t = time.Duration(math.Round(v * float64(unitScale)))
		}
		var lat float64
		if latCol >= 0 && latCol < len(fields) {
			var err error
			if lat, err = parseMs(fields[latCol]); err != nil {
				return fmt.Errorf("line %d: latency %q: want the request's latency target in milliseconds, 0 (none) to %g", line, strings.TrimSpace(fields[latCol]), maxTraceMs)
			}
		}
		if !dated {
			text += " " + unitAbbrev(unitName)
		}
		if n := len(tr.Arrivals); n > 0 && t < tr.Arrivals[n-1].At {
			return fmt.Errorf("line %d: time %s comes before the previous arrival's %s; want times in non-decreasing order",
				line, text, prev)
		}
		prev = text
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

// unitWords names TraceUnits' units in messages.
var unitWords = map[string]string{"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds", "s": "seconds"}

// unitAbbrev is how a time in the unit named in words is written.
func unitAbbrev(words string) string {
	for u, w := range unitWords {
		if w == words {
			return u
		}
	}
	return words
}

// isHeader says whether a first line's first field names a column: it is
// neither a number nor a date.
func isHeader(field string) bool {
	field = strings.TrimSpace(field)
	if _, err := strconv.ParseFloat(field, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return false
	}
	_, date := parseDate(field)
	return !date
}

// dateLayouts are the dates a trace's times may be written as.
var dateLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"}

// parseDate reads a date and time in one of dateLayouts.
func parseDate(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02 15:04") || s[4] != '-' {
		return time.Time{}, false
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

type columns struct {
	time, latency int    // field indexes; latency -1: none
	unit          string // the time column's unit, from its name; "": none said
}

// traceColumns finds the time and latency-target columns of a header.
func traceColumns(fields []string) (columns, error) {
	c := columns{time: -1, latency: -1}
	names := make([]string, len(fields))
	for i, f := range fields {
		n := strings.ToLower(strings.TrimSpace(f))
		names[i] = n
		other := strings.Contains(n, "latency") || strings.Contains(n, "slo") || strings.Contains(n, "deadline") || strings.Contains(n, "target")
		switch {
		case other && c.latency < 0:
			c.latency = i
		case !other && c.time < 0 && !strings.Contains(n, "response") && !strings.Contains(n, "duration") &&
			(strings.Contains(n, "time") || strings.Contains(n, "arrival") || n == "ms" || n == "at" || n == "t"):
			c.time = i
		}
	}
	if c.time < 0 {
		if len(fields) > 2 {
			return c, fmt.Errorf("no column names the arrival time (one whose name holds \"time\" or \"arrival\"); the columns are %s",
				strings.Join(names, ", "))
		}
		c.time = 0 // a header for the plain format, whatever its words
		if len(fields) == 2 && c.latency < 0 {
			c.latency = 1
		}
	}
	n := names[c.time]
	for _, u := range []string{"ns", "us", "ms", "s"} {
		if n == u || strings.HasSuffix(n, "_"+u) || strings.HasSuffix(n, "("+u+")") || strings.HasSuffix(n, " "+u) {
			c.unit = u
			break
		}
	}
	return c, nil
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
