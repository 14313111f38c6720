package workload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Schedule is an offered load over time: a pure function from the time
// since the start to a rate in queries per second, over a total duration.
type Schedule interface {
	// Rate is the offered load at t, in queries per second; 0 outside
	// [0, Duration).
	Rate(t time.Duration) float64
	// Duration is the schedule's length.
	Duration() time.Duration
}

// Step is one rate held for a while.
type Step struct {
	QPS float64
	For time.Duration
}

// Steps is a piecewise-constant schedule: each step holds its rate for its
// duration, one after the other.
type Steps []Step

var _ Schedule = Steps(nil)

// Rate implements Schedule.
func (s Steps) Rate(t time.Duration) float64 {
	if t < 0 {
		return 0
	}
	for _, st := range s {
		if t < st.For {
			return st.QPS
		}
		t -= st.For
	}
	return 0
}

// Duration implements Schedule.
func (s Steps) Duration() time.Duration {
	var d time.Duration
	for _, st := range s {
		d += st.For
	}
	return d
}

// Point is a rate at a time.
type Point struct {
	At  time.Duration
	QPS float64
}

// Linear is a piecewise-linear schedule through its points, which are in
// increasing time order, the first at 0; the last one's time is the
// duration.
type Linear []Point

var _ Schedule = Linear(nil)

// Rate implements Schedule.
func (l Linear) Rate(t time.Duration) float64 {
	if len(l) == 0 || t < 0 || t >= l.Duration() {
		return 0
	}
	i, _ := slices.BinarySearchFunc(l, t, func(p Point, t time.Duration) int {
		return compareDurations(p.At, t)
	})
	return l.rateBefore(i, t)
}

// rateBefore is the rate at t, where l[i] is the first point at or after
// t (t < the last point's time); before the first point the rate is the
// first point's.
func (l Linear) rateBefore(i int, t time.Duration) float64 {
	if i == 0 || l[i].At == t {
		return l[i].QPS
	}
	a, b := l[i-1], l[i]
	f := float64(t-a.At) / float64(b.At-a.At)
	return a.QPS + f*(b.QPS-a.QPS)
}

// Duration implements Schedule.
func (l Linear) Duration() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[len(l)-1].At
}

func compareDurations(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// MeanRate is the mean offered load of s over [from, to), in queries per
// second, integrated numerically (1 ms steps at most).
func MeanRate(s Schedule, from, to time.Duration) float64 {
	if to <= from {
		return 0
	}
	n := int((to - from) / time.Millisecond)
	n = max(1, min(n, 1000))
	step := (to - from) / time.Duration(n)
	sum := 0.0
	for i := range n {
		sum += s.Rate(from + time.Duration(i)*step + step/2)
	}
	return sum / float64(n)
}

// shape is one of the INFaaS paper's load shapes: rates at fractions of
// its duration, joined by straight lines.
type shape struct {
	points      []shapePoint
	defDuration time.Duration
}

type shapePoint struct{ frac, qps float64 }

// shapes are the load shapes of the INFaaS paper's evaluation, by name. The
// default durations are infaas's choice; `NAME:DURATION` compresses or
// stretches a shape to another length.
var shapes = map[string]shape{
	"flat":        {[]shapePoint{{0, 4}, {1, 4}}, 60 * time.Second},
	"steady":      {[]shapePoint{{0, 650}, {1, 700}}, 120 * time.Second},
	"fluctuating": {[]shapePoint{{0, 4}, {0.5, 80}, {1, 4}}, 120 * time.Second},
}

func (s shape) over(d time.Duration) Linear {
	out := make(Linear, len(s.points))
	for i, p := range s.points {
		out[i] = Point{At: time.Duration(p.frac * float64(d)), QPS: p.qps}
	}
	return out
}

// scheduleKinds parses the argument after "KIND:" (empty when there is none).
var scheduleKinds = map[string]func(arg string) (Schedule, error){
	"constant":   parseConstant,
	"steps":      parseSteps,
	"ramp":       parseRamp,
	"csv":        func(path string) (Schedule, error) { return ReadCSVSchedule(path) },
	"csv-minute": func(path string) (Schedule, error) { return ReadCSVMinuteSchedule(path) },
	"diurnal":    parseDiurnal,
	"bursty":     parseBursty,
	"trace":      parseTraceSpec,
}

func init() {
	for name, sh := range shapes {
		scheduleKinds[name] = func(arg string) (Schedule, error) {
			d := sh.defDuration
			if arg != "" {
				var err error
				if d, err = parseDuration(arg); err != nil {
					return nil, err
				}
			}
			return sh.over(d), nil
		}
	}
}

// ScheduleKinds lists the schedule kinds ParseSchedule knows, sorted.
func ScheduleKinds() []string {
	out := make([]string, 0, len(scheduleKinds))
	for k := range scheduleKinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ScheduleHelp describes the schedule syntax, for a flag's usage.
const ScheduleHelp = "constant:QPS:DURATION | steps:QPS@DUR,QPS@DUR,... | ramp:FROM:TO:DURATION | " +
	"flat[:DURATION] (4 QPS) | steady[:DURATION] (650→700 QPS) | fluctuating[:DURATION] (4→80→4 QPS) | " +
	"diurnal[:DURATION[:LOW:HIGH]] (a day, LOW→HIGH→LOW QPS on a raised cosine; 120s:4:80) | " +
	"bursty[:DURATION[:BASE:PEAK[:SEED]]] (BASE QPS with seeded bursts at PEAK; 120s:10:100:1) | " +
	"csv:FILE (one rate per second a line: RATE or SECOND,RATE) | " +
	"csv-minute:FILE (one count per minute a line: COUNT or MINUTE,COUNT; or a row a function, a column a minute numbered 1,2,3,…, " +
	"as the Azure Functions traces, the rows summed) | " +
	"trace:FILE[:UNIT] (one arrival a line: TIME_MS or TIME_MS,LATENCY_MS, ms since the start; or a published trace " +
	"with a header naming its columns: the time is the column whose name holds \"time\" or \"arrival\", a number in UNIT " +
	"(ns, us, ms, s; default ms or the column name's suffix) or a date) | " +
	"scale:SPEED:LOAD:SCHEDULE (SCHEDULE played SPEED times faster, its rates times LOAD; a trace thinned to LOAD ≤ 1)"

// parseTraceSpec reads "FILE" or "FILE:UNIT" (a key of TraceUnits).
func parseTraceSpec(arg string) (Schedule, error) {
	if i := strings.LastIndexByte(arg, ':'); i >= 0 {
		if unit := arg[i+1:]; TraceUnits[unit] > 0 {
			return ReadTraceUnit(arg[:i], unit)
		}
	}
	return ReadTrace(arg)
}

// ParseSchedule reads a schedule written as in ScheduleHelp.
func ParseSchedule(spec string) (Schedule, error) {
	kind, arg, _ := strings.Cut(strings.TrimSpace(spec), ":")
	parse, ok := scheduleKinds[kind]
	if !ok {
		return nil, fmt.Errorf("schedule %q: unknown kind %q; use one of %s", spec, kind, strings.Join(ScheduleKinds(), ", "))
	}
	s, err := parse(arg)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w (the syntax: %s)", spec, err, ScheduleHelp)
	}
	if s.Duration() <= 0 {
		return nil, fmt.Errorf("schedule %q lasts no time; give it a positive duration", spec)
	}
	return s, nil
}

func parseConstant(arg string) (Schedule, error) {
	parts := strings.Split(arg, ":")
	if len(parts) != 2 {
		return nil, errors.New("want constant:QPS:DURATION")
	}
	qps, err := parseRate(parts[0])
	if err != nil {
		return nil, err
	}
	d, err := parseDuration(parts[1])
	if err != nil {
		return nil, err
	}
	return Steps{{QPS: qps, For: d}}, nil
}

func parseSteps(arg string) (Schedule, error) {
	if arg == "" {
		return nil, errors.New("want steps:QPS@DURATION,...")
	}
	var out Steps
	for _, item := range strings.Split(arg, ",") {
		q, d, ok := strings.Cut(strings.TrimSpace(item), "@")
		if !ok {
			return nil, fmt.Errorf("step %q: want QPS@DURATION", item)
		}
		qps, err := parseRate(q)
		if err != nil {
			return nil, err
		}
		dur, err := parseDuration(d)
		if err != nil {
			return nil, err
		}
		out = append(out, Step{QPS: qps, For: dur})
	}
	return out, nil
}

func parseRamp(arg string) (Schedule, error) {
	parts := strings.Split(arg, ":")
	if len(parts) != 3 {
		return nil, errors.New("want ramp:FROM:TO:DURATION")
	}
	from, err := parseRate(parts[0])
	if err != nil {
		return nil, err
	}
	to, err := parseRate(parts[1])
	if err != nil {
		return nil, err
	}
	d, err := parseDuration(parts[2])
	if err != nil {
		return nil, err
	}
	return Linear{{0, from}, {d, to}}, nil
}

func parseRate(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(f >= 0 && f <= maxRate) {
		return 0, fmt.Errorf("rate %q: want a number of queries per second, 0 to 10,000,000", s)
	}
	return f, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration %q: want a positive duration such as 30s or 5m", s)
	}
	return d, nil
}

// ReadCSVSchedule reads a per-second schedule from a file: one rate a line,
// written RATE or SECOND,RATE (seconds from 0, in order, none skipped).
// Blank lines, lines starting with # and a header (a first line that is
// not a number) are ignored.
func ReadCSVSchedule(path string) (Steps, error) { return perSecond.read(path) }

// ReadCSVMinuteSchedule reads a per-minute schedule from a file: one count
// of queries a line, written COUNT or MINUTE,COUNT (minutes from 0, in
// order, none skipped), each held as the rate COUNT/60 for its minute.
// Blank lines, # comments and a header are ignored as ReadCSVSchedule
// ignores them.
func ReadCSVMinuteSchedule(path string) (Steps, error) { return perMinute.read(path) }

// stepFile is a file format of one figure per step a line: the figure is a
// count of queries over the step (for one-second steps, a rate).
type stepFile struct {
	step  time.Duration
	index string // what the optional first field counts: "second"
	value string // what the figure is called in the syntax: "RATE"
	what  string // and in words: "a number of queries per second"
}

var (
	perSecond = stepFile{time.Second, "second", "RATE", "a number of queries per second"}
	perMinute = stepFile{time.Minute, "minute", "COUNT", "a number of queries in the minute"}
)

// maxRate bounds every rate a schedule is given, in queries per second
// (the errors say 10,000,000).
const maxRate = 1e7

func (f stepFile) syntax() string {
	return fmt.Sprintf("%s or %s,%s", f.value, strings.ToUpper(f.index), f.value)
}

func (f stepFile) read(path string) (Steps, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return f.parse(file)
}

func (f stepFile) parse(r io.Reader) (Steps, error) {
	var out Steps
	var wide []int // field indexes of the steps, when a header numbers them
	rows := 0
	err := eachRecord(r, func(line int, first bool, fields []string) error {
		if first && len(fields) > 2 {
			if wide = stepColumns(fields); wide == nil {
				return fmt.Errorf("line %d: %q: want %s, or a header numbering the %ss (1,2,3,…) with one row of counts a line, as the Azure Functions traces are",
					line, strings.Join(fields, ","), f.syntax(), f.index)
			}
			out = make(Steps, len(wide))
			for i := range out {
				out[i].For = f.step
			}
			return nil
		}
		if wide != nil {
			rows++
			return f.addRow(out, wide, line, fields)
		}
		if len(fields) > 2 {
			return fmt.Errorf("line %d: %q: want %s", line, strings.Join(fields, ","), f.syntax())
		}
		if len(fields) == 2 {
			i, err := strconv.Atoi(strings.TrimSpace(fields[0]))
			if err != nil && first {
				return nil // a header
			}
			if err != nil || i != len(out) {
				return fmt.Errorf("line %d: %s %q: want %d (%ss count from 0, one a line)", line, f.index, fields[0], len(out), f.index)
			}
		}
		text := strings.TrimSpace(fields[len(fields)-1])
		v, err := strconv.ParseFloat(text, 64)
		qps := v / f.step.Seconds()
		if errors.Is(err, strconv.ErrSyntax) && first {
			return nil // a header: not a number
		}
		if err != nil || !(qps >= 0 && qps <= maxRate) {
			return fmt.Errorf("line %d: %s %q: want %s, 0 or more (at most 10,000,000 a second)",
				line, strings.ToLower(f.value), text, f.what)
		}
		out = append(out, Step{QPS: qps, For: f.step})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || (wide != nil && rows == 0) {
		return nil, fmt.Errorf("no %ss; write one per line (%s)", strings.ToLower(f.value), f.syntax())
	}
	return out, nil
}

// stepColumns is the field indexes of a header's step columns, numbered 1,
// 2, 3, … in order (other columns — names, hashes, a trigger — come before
// or between them and are skipped), or nil when it numbers none.
func stepColumns(header []string) []int {
	var cols []int
	for i, h := range header {
		if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
			if n != len(cols)+1 {
				return nil
			}
			cols = append(cols, i)
		}
	}
	return cols
}

// addRow adds one row of a wide file's counts (one per step column) to out.
func (f stepFile) addRow(out Steps, cols []int, line int, fields []string) error {
	if len(fields) <= cols[len(cols)-1] {
		return fmt.Errorf("line %d: %d fields; the header numbers %d %ss up to field %d", line, len(fields), len(cols), f.index, cols[len(cols)-1]+1)
	}
	for k, i := range cols {
		text := strings.TrimSpace(fields[i])
		v, err := strconv.ParseFloat(text, 64)
		qps := out[k].QPS + v/f.step.Seconds()
		if err != nil || !(v >= 0 && qps <= maxRate) {
			return fmt.Errorf("line %d: %s %d: %q: want %s, 0 or more (all rows together at most 10,000,000 a second)",
				line, f.index, k+1, text, f.what)
		}
		out[k].QPS = qps
	}
	return nil
}

// eachRecord calls fn with the comma-separated fields of each line of r
// that is neither blank nor a # comment, and its line number (from 1);
// first is true for the first such line, which may be a header. It stops
// at fn's first error.
func eachRecord(r io.Reader, fn func(line int, first bool, fields []string) error) error {
	sc := bufio.NewScanner(r)
	first := true
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff") // a byte-order mark, as spreadsheets write
		}
		text = strings.TrimSpace(text)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if err := fn(line, first, strings.Split(text, ",")); err != nil {
			return err
		}
		first = false
	}
	return sc.Err()
}
