package loadgen

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotVariants is how many variants get a line of their own; the others
// share one.
const plotVariants = 6

// WritePlot draws a run over time as a PNG of four panels sharing the time
// axis: offered load, sent and answered QPS; p50 and p99 latency against
// the tightest latency target; violations, refusals, failures and drops
// per second; and the QPS each variant served.
func WritePlot(w io.Writer, rows []Row, s Summary) error {
	if len(rows) == 0 {
		return fmt.Errorf("no rows to plot")
	}
	series := func(f func(Row) float64) plotter.XYs {
		xys := make(plotter.XYs, len(rows))
		for i, r := range rows {
			xys[i] = plotter.XY{X: float64(r.Second), Y: f(r)}
		}
		return xys
	}
	title := "infaas loadgen"
	if s.Schedule != "" {
		title += " — " + s.Schedule
	}

	load := panel(title, "QPS")
	latency := panel("", "latency (ms)")
	trouble := panel("", "per second")
	variants := panel("", "served QPS by variant")
	variants.X.Label.Text = "seconds"

	err := addLines(load,
		line{"offered", series(func(r Row) float64 { return r.Offered }), true},
		line{"sent", series(func(r Row) float64 { return float64(r.Sent) }), false},
		line{"answered", series(func(r Row) float64 { return float64(r.Answered) }), false},
	)
	if err == nil {
		ls := []line{
			{"p50", series(func(r Row) float64 { return r.P50Ms }), false},
			{"p99", series(func(r Row) float64 { return r.P99Ms }), false},
		}
		if s.TightestTargetMs > 0 {
			ls = append(ls, line{fmt.Sprintf("tightest target %.4g ms", s.TightestTargetMs),
				series(func(Row) float64 { return s.TightestTargetMs }), true})
		}
		err = addLines(latency, ls...)
	}
	if err == nil {
		err = addLines(trouble,
			line{"violations", series(func(r Row) float64 { return float64(r.Violations) }), false},
			line{"refused", series(func(r Row) float64 { return float64(r.Refused) }), false},
			line{"failed", series(func(r Row) float64 { return float64(r.Failed) }), false},
			line{"dropped", series(func(r Row) float64 { return float64(r.Dropped) }), true},
		)
	}
	if err == nil {
		err = addLines(variants, variantLines(rows, series)...)
	}
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}

	plots := [][]*plot.Plot{{load}, {latency}, {trouble}, {variants}}
	img := vgimg.New(28*vg.Centimeter, 32*vg.Centimeter)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, dc)
	for i, row := range plots {
		row[0].Draw(canvases[i][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("plot: write PNG: %w", err)
	}
	return nil
}

// variantLines are the served QPS of the variants that served most, one
// line each, and of all others together.
func variantLines(rows []Row, series func(func(Row) float64) plotter.XYs) []line {
	total := map[string]int{}
	for _, r := range rows {
		for v, n := range r.Variants {
			total[v] += n
		}
	}
	names := sortedVariants(total)
	if len(names) == 0 {
		return nil
	}
	top := names[:min(len(names), plotVariants)]
	var out []line
	for _, name := range top {
		out = append(out, line{name, series(func(r Row) float64 { return float64(r.Variants[name]) }), false})
	}
	if rest := names[len(top):]; len(rest) > 0 {
		out = append(out, line{fmt.Sprintf("%d others", len(rest)), series(func(r Row) float64 {
			n := 0
			for _, name := range rest {
				n += r.Variants[name]
			}
			return float64(n)
		}), true})
	}
	return out
}

func panel(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

type line struct {
	name   string
	xys    plotter.XYs
	dashed bool
}

func addLines(p *plot.Plot, ls ...line) error {
	for i, l := range ls {
		pl, err := plotter.NewLine(l.xys)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		pl.Color = plotutil.Color(i)
		pl.Width = vg.Points(1.2)
		if l.dashed {
			pl.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(pl)
		p.Legend.Add(l.name, pl)
	}
	if len(ls) == 0 {
		p.Legend.Add("no variant reported", emptyThumb{})
	}
	// Headroom above the data for the legend in the top left corner.
	top := 0.0
	for _, l := range ls {
		for _, xy := range l.xys {
			top = max(top, xy.Y)
		}
	}
	if top > 0 {
		p.Y.Max = top * (1.1 + 0.1*float64(max(len(ls), 1)))
	}
	return nil
}

// emptyThumb is a legend entry without a mark.
type emptyThumb struct{}

func (emptyThumb) Thumbnail(c *draw.Canvas) {
	c.SetColor(color.Transparent)
}
