package sim

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// reportEvents is how many events report.md lists; events.csv has all.
const reportEvents = 50

// comparePolicy is the policy WriteComparison's ratios compare the
// others with.
const comparePolicy = "infaas"

// WriteReport writes one run into dir (created if need be):
//
//   - report.md: the headline figures as a table, the assumptions, and the
//     first 50 events;
//   - report.csv: the same figures, a header row and one data row;
//   - series.csv: the time series, a row per Sample;
//   - events.csv: every event;
//   - timeline.png: the run over time in the shape of the INFaaS paper's
//     Figure 6, five panels sharing the time axis: offered and answered
//     q/s; p99 latency against targetMs (no target line when it is 0);
//     cumulative occupancy cost; workers and replicas; and the variant
//     that served most in each row, one level per variant.
//
// A run without samples still gets every file: the panels of its plot are
// empty and say "no samples". The Markdown and CSV files depend only on r,
// so equal runs give equal bytes.
func WriteReport(dir string, r *Result, targetMs float64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim report: %w", err)
	}
	figs := figures(r)
	header, values := make([]string, len(figs)), make([]string, len(figs))
	for i, f := range figs {
		header[i], values[i] = f.column, f.value
	}
	series := [][]string{{"t_s", "offered", "answered", "refused", "failed", "late", "p99_ms", "workers", "replicas", "cost_usd", "variant"}}
	for _, s := range r.Series {
		series = append(series, []string{fixed(s.T, 3), strconv.Itoa(s.Offered), strconv.Itoa(s.Answered),
			strconv.Itoa(s.Refused), strconv.Itoa(s.Failed), strconv.Itoa(s.Late), fixed(s.P99Ms, 3),
			strconv.Itoa(s.Workers), strconv.Itoa(s.Replicas), fixed(s.CostUSD, 6), s.Variant})
	}
	events := [][]string{{"t_s", "source", "action", "variant", "from", "worker", "class", "reason", "message"}}
	for _, e := range r.Events {
		events = append(events, []string{fixed(e.T, 3), e.Source, e.Action, e.Variant, e.From, e.Worker, e.Class, e.Reason, e.Message})
	}
	files := []struct {
		name string
		data []byte
	}{
		{"report.md", []byte(reportMarkdown(r, figs))},
		{"report.csv", csvBytes([][]string{header, values})},
		{"series.csv", csvBytes(series)},
		{"events.csv", csvBytes(events)},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("sim report: %w", err)
		}
	}
	if err := writeTimeline(filepath.Join(dir, "timeline.png"), r, targetMs); err != nil {
		return fmt.Errorf("sim report: timeline: %w", err)
	}
	return nil
}

// figure is one headline figure: its name in report.md, its column in
// report.csv, and its value in both.
type figure struct{ name, column, value string }

func figures(r *Result) []figure {
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	return []figure{
		{"policy", "policy", r.Policy},
		{"workload", "workload", r.Workload},
		{"seed", "seed", strconv.FormatUint(r.Seed, 10)},
		{"duration (s)", "duration_s", fixed(r.DurationS, 1)},
		{"until the last answer (s)", "elapsed_s", fixed(r.ElapsedS, 1)},
		{"sent", "sent", i64(r.Sent)},
		{"answered", "answered", i64(r.Answered)},
		{"refused", "refused", i64(r.Refused)},
		{"refused by reason", "refused_why", counts(r.RefusedWhy)},
		{"failed", "failed", i64(r.Failed)},
		{"late", "late", i64(r.Late)},
		{"throughput (q/s)", "throughput_qps", fixed(r.ThroughputQPS, 2)},
		{"p50 (ms)", "p50_ms", fixed(r.P50Ms, 2)},
		{"p99 (ms)", "p99_ms", fixed(r.P99Ms, 2)},
		{"mean (ms)", "mean_ms", fixed(r.MeanMs, 2)},
		{"violation rate (% of answered)", "violation_rate_pct", fixed(100*r.ViolationRate, 2)},
		{"miss rate (% of sent)", "miss_rate_pct", fixed(100*r.MissRate, 2)},
		{"cost (USD, replica occupancy)", "cost_usd", fixed(r.CostUSD, 5)},
		{"worker cost (USD)", "worker_cost_usd", fixed(r.WorkerCostUSD, 5)},
		{"loads", "loads", i64(r.Loads)},
		{"variant changes", "variant_changes", strconv.Itoa(r.VariantChanges)},
		{"peak workers", "peak_workers", strconv.Itoa(r.PeakWorkers)},
		{"peak replicas", "peak_replicas", strconv.Itoa(r.PeakReplicas)},
		{"autoscaler actions", "actions", counts(r.Actions)},
	}
}

func reportMarkdown(r *Result, figs []figure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Simulated run: %s", cell(r.Policy))
	if r.Workload != "" {
		fmt.Fprintf(&b, " on %s", cell(r.Workload))
	}
	b.WriteString("\n\n| figure | value |\n| --- | ---: |\n")
	for _, f := range figs {
		fmt.Fprintf(&b, "| %s | %s |\n", f.name, cell(f.value))
	}
	b.WriteString("\n![timeline](timeline.png)\n")
	if len(r.Assumptions) > 0 {
		b.WriteString("\n## Assumptions\n\n")
		for _, a := range r.Assumptions {
			fmt.Fprintf(&b, "- %s\n", a)
		}
	}
	b.WriteString("\n## Events\n\n")
	switch n := len(r.Events); {
	case n == 0:
		b.WriteString("No autoscaler events.\n")
	case n > reportEvents:
		fmt.Fprintf(&b, "The first %d of %d (all in events.csv):\n\n", reportEvents, n)
	}
	for _, e := range r.Events[:min(len(r.Events), reportEvents)] {
		fmt.Fprintf(&b, "- %.1f s: %s %s", e.T, e.Source, e.Action)
		if e.Variant != "" {
			fmt.Fprintf(&b, " `%s`", e.Variant)
		}
		if e.From != "" {
			fmt.Fprintf(&b, " (from `%s`)", e.From)
		}
		if e.Worker != "" {
			fmt.Fprintf(&b, " on %s", e.Worker)
		}
		if e.Reason != "" {
			fmt.Fprintf(&b, ": %s", e.Reason)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteComparison writes the runs of several policies on one workload
// into dir (created if need be):
//
//   - compare.md: FormatTable's table, then the ratios of the "infaas" run
//     to each other run (throughput, misses by miss rate, occupancy cost),
//     then the notes as bullets;
//   - compare.csv: the same table, with the workload as a first column;
//   - compare.png: the runs over time, a line per policy, in three panels:
//     p99 latency against targetMs (no target line when it is 0), answered
//     q/s, and cumulative cost.
//
// Rows are sorted by policy name; the Markdown and CSV files depend only
// on the arguments, so equal runs give equal bytes.
func WriteComparison(dir string, workload string, rs []*Result, targetMs float64, notes []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim comparison: %w", err)
	}
	rs = byPolicy(rs)
	var b strings.Builder
	fmt.Fprintf(&b, "# Policies compared on %s\n\n", cell(workload))
	if targetMs > 0 {
		fmt.Fprintf(&b, "Latency target: %g ms.\n\n", targetMs)
	}
	b.WriteString(FormatTable(rs))
	b.WriteString("\n![comparison](compare.png)\n\n## Ratios\n\n")
	b.WriteString(ratios(rs))
	if len(notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	table := [][]string{append([]string{"workload"}, compareColumns...)}
	for _, r := range rs {
		table = append(table, append([]string{workload}, compareRow(r)...))
	}
	if err := os.WriteFile(filepath.Join(dir, "compare.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("sim comparison: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compare.csv"), csvBytes(table), 0o644); err != nil {
		return fmt.Errorf("sim comparison: %w", err)
	}
	if err := writeComparePlot(filepath.Join(dir, "compare.png"), workload, rs, targetMs); err != nil {
		return fmt.Errorf("sim comparison: plot: %w", err)
	}
	return nil
}

// compareColumns are the columns of FormatTable and compare.csv.
var compareColumns = []string{"policy", "throughput_qps", "p99_ms", "violation_rate_pct", "miss_rate_pct", "cost_usd",
	"loads", "variant_changes", "peak_workers", "peak_replicas"}

// compareHeads are compareColumns as FormatTable heads them.
var compareHeads = []string{"policy", "throughput (q/s)", "p99 (ms)", "violation rate (%)", "miss rate (%)", "cost (USD)",
	"loads", "variant changes", "peak workers", "peak replicas"}

func compareRow(r *Result) []string {
	return []string{r.Policy, fixed(r.ThroughputQPS, 2), fixed(r.P99Ms, 2), fixed(100*r.ViolationRate, 2),
		fixed(100*r.MissRate, 2), fixed(r.CostUSD, 5), strconv.FormatInt(r.Loads, 10), strconv.Itoa(r.VariantChanges),
		strconv.Itoa(r.PeakWorkers), strconv.Itoa(r.PeakReplicas)}
}

// FormatTable is the Markdown table of several runs, a row per run sorted
// by policy name: throughput, p99 latency, violation and miss rates,
// occupancy cost, loads, variant changes, and peak workers and replicas.
func FormatTable(rs []*Result) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(compareHeads, " | ") + " |\n|")
	for i := range compareHeads {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteByte('\n')
	for _, r := range byPolicy(rs) {
		row := compareRow(r)
		for i, c := range row {
			row[i] = cell(c)
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

// byPolicy is a copy of rs sorted by policy name, equal names in their
// order.
func byPolicy(rs []*Result) []*Result {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b *Result) int { return strings.Compare(a.Policy, b.Policy) })
	return rs
}

// ratios compares the comparePolicy run with each other run, a bullet
// each.
func ratios(rs []*Result) string {
	i := slices.IndexFunc(rs, func(r *Result) bool { return r.Policy == comparePolicy })
	if i < 0 {
		return fmt.Sprintf("No %s run to compare the others with.\n", comparePolicy)
	}
	in := rs[i]
	var b strings.Builder
	for j, o := range rs {
		if j == i {
			continue
		}
		fmt.Fprintf(&b, "- %s vs %s: throughput ", comparePolicy, cell(o.Policy))
		if o.ThroughputQPS > 0 {
			fmt.Fprintf(&b, "%.2f×", in.ThroughputQPS/o.ThroughputQPS)
		} else {
			b.WriteString("n/a")
		}
		fmt.Fprintf(&b, " (%.2f vs %.2f q/s); misses ", in.ThroughputQPS, o.ThroughputQPS)
		switch {
		case in.MissRate > 0:
			fmt.Fprintf(&b, "%.2f× fewer", o.MissRate/in.MissRate)
		case o.MissRate > 0:
			fmt.Fprintf(&b, "n/a (0 misses for %s)", comparePolicy)
		default:
			b.WriteString("n/a (0 misses for either)")
		}
		fmt.Fprintf(&b, " (miss rate %.2f%% vs %.2f%%); cost ", 100*in.MissRate, 100*o.MissRate)
		if in.CostUSD > 0 {
			fmt.Fprintf(&b, "%.2f× lower", o.CostUSD/in.CostUSD)
		} else {
			fmt.Fprintf(&b, "n/a (0 USD for %s)", comparePolicy)
		}
		fmt.Fprintf(&b, " (%.5f vs %.5f USD)\n", in.CostUSD, o.CostUSD)
	}
	if b.Len() == 0 {
		return fmt.Sprintf("No run but %s's to compare with.\n", comparePolicy)
	}
	return b.String()
}

func fixed(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

// counts writes a count per kind as "kind:n" pairs sorted by kind.
func counts[N int | int64](m map[string]N) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// cell is s as a Markdown table cell: pipes escaped, "-" for nothing.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

func csvBytes(rows [][]string) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.WriteAll(rows) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// Plots.

// rate is a row's count per second of the row's length.
func rate(s []Sample, i int, n int) float64 {
	dt := s[i].T
	if i > 0 {
		dt -= s[i-1].T
	}
	if dt <= 0 {
		return float64(n)
	}
	return float64(n) / dt
}

// points are the rows of s that keep accepts (all if nil) at y.
func points(s []Sample, keep func(Sample) bool, y func(i int) float64) plotter.XYs {
	var xys plotter.XYs
	for i, r := range s {
		if keep == nil || keep(r) {
			xys = append(xys, plotter.XY{X: r.T, Y: y(i)})
		}
	}
	return xys
}

func answered(s Sample) bool { return s.Answered > 0 }

// span is the time axis's end: the last row's time or the duration,
// whichever is later, at least a second.
func span(rs ...*Result) float64 {
	end := 1.0
	for _, r := range rs {
		end = max(end, r.DurationS)
		if n := len(r.Series); n > 0 {
			end = max(end, r.Series[n-1].T)
		}
	}
	return end
}

// timePanel is an empty panel over [0, end] seconds.
func timePanel(title, ylabel string, end float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max, p.Y.Min = 0, end, 0
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p
}

// curve is a line of a panel: color is plotutil's color index.
type curve struct {
	name   string
	xys    plotter.XYs
	color  int
	dashed bool
}

// drawCurves adds the curves to p, with room above them for the legend;
// a panel without any says "no samples".
func drawCurves(p *plot.Plot, cs ...curve) error {
	n := 0
	for _, c := range cs {
		if len(c.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(c.xys)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		l.Color, l.Width = plotutil.Color(c.color), vg.Points(1.2)
		if c.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l)
		p.Legend.Add(c.name, l)
		n++
	}
	if n == 0 {
		p.Legend.Add("no samples")
	}
	if p.Y.Max <= p.Y.Min {
		p.Y.Max = p.Y.Min + 1
	}
	p.Y.Max *= 1.1 + 0.1*float64(max(n, 1))
	return nil
}

// writeTiles draws the panels one above the other as a PNG of w × h.
func writeTiles(path string, panels []*plot.Plot, w, h vg.Length) error {
	plots := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		plots[i] = []*plot.Plot{p}
	}
	panels[len(panels)-1].X.Label.Text = "seconds"
	img := vgimg.New(w, h)
	pad := 2 * vg.Millimeter
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: 3 * vg.Millimeter, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad}
	for i, c := range plot.Align(plots, tiles, draw.New(img)) {
		panels[i].Draw(c[0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// targetCurve is the latency target across the time axis (none for 0).
func targetCurve(targetMs, end float64, color int) []curve {
	if targetMs <= 0 {
		return nil
	}
	return []curve{{fmt.Sprintf("target %g ms", targetMs), plotter.XYs{{X: 0, Y: targetMs}, {X: end, Y: targetMs}}, color, true}}
}

func writeTimeline(path string, r *Result, targetMs float64) error {
	s, end := r.Series, span(r)
	title := "simulated run: " + r.Policy
	if r.Workload != "" {
		title += " on " + r.Workload
	}
	load := timePanel(title, "q/s", end)
	latency := timePanel("", "p99 latency (ms)", end)
	cost := timePanel("", "cumulative cost (USD)", end)
	fleet := timePanel("", "count", end)
	err := drawCurves(load,
		curve{"offered", points(s, nil, func(i int) float64 { return rate(s, i, s[i].Offered) }), 0, true},
		curve{"answered", points(s, nil, func(i int) float64 { return rate(s, i, s[i].Answered) }), 1, false})
	if err == nil {
		err = drawCurves(latency, append([]curve{{"p99", points(s, answered, func(i int) float64 { return s[i].P99Ms }), 1, false}},
			targetCurve(targetMs, end, 0)...)...)
	}
	if err == nil {
		err = drawCurves(cost, curve{"replica occupancy", points(s, nil, func(i int) float64 { return s[i].CostUSD }), 2, false})
	}
	if err == nil {
		err = drawCurves(fleet,
			curve{"workers", points(s, nil, func(i int) float64 { return float64(s[i].Workers) }), 3, false},
			curve{"replicas", points(s, nil, func(i int) float64 { return float64(s[i].Replicas) }), 4, false})
	}
	if err != nil {
		return err
	}
	variants, err := variantPanel(s, end)
	if err != nil {
		return err
	}
	return writeTiles(path, []*plot.Plot{load, latency, cost, fleet, variants}, 8*vg.Inch, 11*vg.Inch)
}

// variantPanel marks, for each row some variant served, that variant:
// one level per variant, in the order they first served.
func variantPanel(s []Sample, end float64) (*plot.Plot, error) {
	p := timePanel("", "variant serving most", end)
	level := map[string]int{}
	var ticks plot.ConstantTicks
	for _, r := range s {
		if _, ok := level[r.Variant]; !ok && r.Variant != "" {
			level[r.Variant] = len(ticks)
			ticks = append(ticks, plot.Tick{Value: float64(len(ticks)), Label: r.Variant})
		}
	}
	p.Y.Tick.Marker = ticks
	p.Y.Min, p.Y.Max = -0.5, max(float64(len(ticks))-0.5, 0.5)
	if len(ticks) == 0 {
		p.Legend.Add("no variant served")
		return p, nil
	}
	sc, err := plotter.NewScatter(points(s, func(r Sample) bool { return r.Variant != "" },
		func(i int) float64 { return float64(level[s[i].Variant]) }))
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle = draw.GlyphStyle{Color: plotutil.Color(1), Radius: vg.Points(1.5), Shape: draw.CircleGlyph{}}
	p.Add(sc)
	return p, nil
}

func writeComparePlot(path, workload string, rs []*Result, targetMs float64) error {
	end := span(rs...)
	latency := timePanel("policies on "+workload, "p99 latency (ms)", end)
	load := timePanel("", "answered q/s", end)
	cost := timePanel("", "cumulative cost (USD)", end)
	var lat, ans, usd []curve
	for i, r := range rs {
		s := r.Series
		lat = append(lat, curve{r.Policy, points(s, answered, func(j int) float64 { return s[j].P99Ms }), i, false})
		ans = append(ans, curve{r.Policy, points(s, nil, func(j int) float64 { return rate(s, j, s[j].Answered) }), i, false})
		usd = append(usd, curve{r.Policy, points(s, nil, func(j int) float64 { return s[j].CostUSD }), i, false})
	}
	err := drawCurves(latency, append(lat, targetCurve(targetMs, end, len(rs))...)...)
	if err == nil {
		err = drawCurves(load, ans...)
	}
	if err == nil {
		err = drawCurves(cost, usd...)
	}
	if err != nil {
		return err
	}
	return writeTiles(path, []*plot.Plot{latency, load, cost}, 8*vg.Inch, 8*vg.Inch)
}
