package sim

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reportResult is a made-up run of policy: throughput qps, miss rate
// miss, cost usd, with a few rows (one without a variant) and n events.
func reportResult(policy string, qps, miss, usd float64, events int) *Result {
	r := &Result{Policy: policy, Workload: "fluctuating:4s", Seed: 7, DurationS: 4, ElapsedS: 4.2,
		Sent: 100, Answered: 90, Refused: 6, Failed: 1, Late: 3, ViolationRate: 3.0 / 90, MissRate: miss,
		RefusedWhy: map[string]int64{"queue full": 4, "no variant": 2}, ThroughputQPS: qps, P50Ms: 12.5, P99Ms: 48.25,
		MeanMs: 15, CostUSD: usd, WorkerCostUSD: 2 * usd, Loads: 3, Actions: map[string]int{"unload": 1, "load": 2},
		VariantChanges: 1, PeakWorkers: 2, PeakReplicas: 3,
		Assumptions: []string{"the gpu class's profile is derived from the cpu one"}}
	r.Series = []Sample{
		{T: 1, Offered: 20, Answered: 18, Refused: 2, P99Ms: 30, Workers: 1, Replicas: 1, CostUSD: usd / 4, Variant: "net-fp32-b1"},
		{T: 2, Offered: 30, Answered: 27, Late: 2, P99Ms: 60, Workers: 2, Replicas: 2, CostUSD: usd / 2, Variant: "net-int8-b8"},
		{T: 3, Offered: 10, Workers: 2, Replicas: 3, CostUSD: 3 * usd / 4},
		{T: 4, Offered: 40, Answered: 45, Failed: 1, P99Ms: 20, Workers: 2, Replicas: 2, CostUSD: usd, Variant: "net-int8-b8"},
	}
	for i := range events {
		r.Events = append(r.Events, Event{T: float64(i) / 10, Source: "model-autoscaler", Action: "load",
			Variant: fmt.Sprintf("v%d", i), Worker: "w1", Reason: "overloaded, with a comma"})
	}
	return r
}

// readCSV parses a file, checking every row has cols columns.
func readCSV(t *testing.T, path string, cols int) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for i, r := range rows {
		if len(r) != cols {
			t.Fatalf("%s row %d has %d columns, want %d", path, i, len(r), cols)
		}
	}
	return rows
}

// checkPNG decodes a PNG and checks it is at least w × h pixels.
func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < w || b.Dy() < h {
		t.Errorf("%s is %v, want at least %d × %d", path, b, w, h)
	}
}

// readFiles reads the named files of dir, failing on a missing or empty
// one.
func readFiles(t *testing.T, dir string, names ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", n)
		}
		out[n] = b
	}
	return out
}

var reportFiles = []string{"report.md", "report.csv", "series.csv", "events.csv", "timeline.png"}

func TestWriteReport(t *testing.T) {
	r := reportResult("infaas", 22.5, 0.1, 0.0125, 60)
	dir := filepath.Join(t.TempDir(), "run") // WriteReport makes it
	if err := WriteReport(dir, r, 50); err != nil {
		t.Fatal(err)
	}
	files := readFiles(t, dir, reportFiles...)
	checkPNG(t, filepath.Join(dir, "timeline.png"), 600, 800)

	md := string(files["report.md"])
	for _, want := range []string{
		"| policy | infaas |", "| workload | fluctuating:4s |", "| seed | 7 |", "| throughput (q/s) | 22.50 |",
		"| p99 (ms) | 48.25 |", "| violation rate (% of answered) | 3.33 |", "| miss rate (% of sent) | 10.00 |",
		"| cost (USD, replica occupancy) | 0.01250 |", "| worker cost (USD) | 0.02500 |",
		"| autoscaler actions | load:2 unload:1 |", "| refused by reason | no variant:2 queue full:4 |",
		"## Assumptions\n\n- the gpu class's profile is derived from the cpu one\n",
		"The first 50 of 60", "- 0.0 s: model-autoscaler load `v0` on w1: overloaded, with a comma\n",
		"- 4.9 s: model-autoscaler load `v49` on w1",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "`v50`") {
		t.Errorf("report.md lists more than 50 events")
	}

	head := readCSV(t, filepath.Join(dir, "report.csv"), len(figures(r)))
	if len(head) != 2 || head[0][0] != "policy" || head[1][0] != "infaas" {
		t.Errorf("report.csv = %q", head)
	}
	series := readCSV(t, filepath.Join(dir, "series.csv"), 11)
	if len(series) != 1+len(r.Series) || series[2][10] != "net-int8-b8" || series[3][10] != "" {
		t.Errorf("series.csv = %q", series)
	}
	events := readCSV(t, filepath.Join(dir, "events.csv"), 9)
	if len(events) != 1+len(r.Events) || events[1][7] != "overloaded, with a comma" {
		t.Errorf("events.csv has %d rows, first %q", len(events), events[min(1, len(events)-1)])
	}

	again := filepath.Join(t.TempDir(), "again")
	if err := WriteReport(again, reportResult("infaas", 22.5, 0.1, 0.0125, 60), 50); err != nil {
		t.Fatal(err)
	}
	files2 := readFiles(t, again, reportFiles...)
	for _, n := range []string{"report.md", "report.csv", "series.csv", "events.csv"} {
		if !bytes.Equal(files[n], files2[n]) {
			t.Errorf("%s differs between two writes of one run", n)
		}
	}
}

// A run without samples, events or maps still gets every file; its plot's
// panels are empty.
func TestWriteReportEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := WriteReport(dir, &Result{Policy: "infaas"}, 0); err != nil {
		t.Fatal(err)
	}
	files := readFiles(t, dir, reportFiles...)
	checkPNG(t, filepath.Join(dir, "timeline.png"), 600, 800)
	if md := string(files["report.md"]); !strings.Contains(md, "No autoscaler events.") || strings.Contains(md, "Assumptions") {
		t.Errorf("report.md:\n%s", md)
	}
	if rows := readCSV(t, filepath.Join(dir, "series.csv"), 11); len(rows) != 1 {
		t.Errorf("series.csv has %d rows, want the header only", len(rows))
	}
	readCSV(t, filepath.Join(dir, "events.csv"), 9)
}

var compareFiles = []string{"compare.md", "compare.csv", "compare.png"}

func TestWriteComparison(t *testing.T) {
	runs := func() []*Result {
		return []*Result{
			reportResult("sm+", 10, 0.03, 0.015, 2),
			reportResult("infaas", 20, 0.01, 0.01, 3),
			reportResult("clipper+", 0, 0, 0.04, 0),
		}
	}
	rs := runs()
	rs[2].Series = nil // one policy without samples
	dir := t.TempDir()
	notes := []string{"simulated on made-up profiles"}
	if err := WriteComparison(dir, "fluctuating:4s", rs, 50, notes); err != nil {
		t.Fatal(err)
	}
	if rs[0].Policy != "sm+" {
		t.Errorf("WriteComparison reordered its argument")
	}
	files := readFiles(t, dir, compareFiles...)
	checkPNG(t, filepath.Join(dir, "compare.png"), 600, 600)

	md := string(files["compare.md"])
	for _, want := range []string{
		"# Policies compared on fluctuating:4s", "Latency target: 50 ms.",
		"| clipper+ | 0.00 |", "| infaas | 20.00 | 48.25 | 3.33 | 1.00 | 0.01000 | 3 | 1 | 2 | 3 |", "| sm+ | 10.00 |",
		"- infaas vs sm+: throughput 2.00× (20.00 vs 10.00 q/s); misses 3.00× fewer (miss rate 1.00% vs 3.00%); cost 1.50× lower (0.01000 vs 0.01500 USD)\n",
		"- infaas vs clipper+: throughput n/a (20.00 vs 0.00 q/s); misses 0.00× fewer (miss rate 1.00% vs 0.00%); cost 4.00× lower",
		"## Notes\n\n- simulated on made-up profiles\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("compare.md lacks %q:\n%s", want, md)
		}
	}
	if c, i, s := strings.Index(md, "| clipper+"), strings.Index(md, "| infaas"), strings.Index(md, "| sm+"); !(c < i && i < s) {
		t.Errorf("rows not sorted by policy:\n%s", md)
	}
	rows := readCSV(t, filepath.Join(dir, "compare.csv"), 1+len(compareColumns))
	if len(rows) != 4 || rows[0][0] != "workload" || rows[1][1] != "clipper+" || rows[2][1] != "infaas" || rows[2][2] != "20.00" {
		t.Errorf("compare.csv = %q", rows)
	}

	again := t.TempDir()
	rs = runs()
	rs[2].Series = nil
	if err := WriteComparison(again, "fluctuating:4s", rs, 50, notes); err != nil {
		t.Fatal(err)
	}
	files2 := readFiles(t, again, compareFiles...)
	for _, n := range []string{"compare.md", "compare.csv"} {
		if !bytes.Equal(files[n], files2[n]) {
			t.Errorf("%s differs between two writes of one comparison", n)
		}
	}
}

func TestComparisonRatioGuards(t *testing.T) {
	in := reportResult("infaas", 20, 0, 0, 0)
	both := reportResult("both-zero", 5, 0, 0.01, 0)
	missing := reportResult("misses", 5, 0.02, 0.01, 0)
	got := ratios(byPolicy([]*Result{in, both, missing}))
	for _, want := range []string{
		"- infaas vs both-zero: throughput 4.00× (20.00 vs 5.00 q/s); misses n/a (0 misses for either) (miss rate 0.00% vs 0.00%); cost n/a (0 USD for infaas)",
		"- infaas vs misses: throughput 4.00× (20.00 vs 5.00 q/s); misses n/a (0 misses for infaas)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ratios lack %q:\n%s", want, got)
		}
	}
	if got := ratios([]*Result{missing}); !strings.Contains(got, "No infaas run") {
		t.Errorf("without infaas: %q", got)
	}
	if got := ratios([]*Result{in}); !strings.Contains(got, "No run but infaas's") {
		t.Errorf("infaas alone: %q", got)
	}

	// Comparing runs without any samples still writes every file.
	dir := t.TempDir()
	if err := WriteComparison(dir, "empty", []*Result{{Policy: "infaas"}, {Policy: "sm+"}}, 0, nil); err != nil {
		t.Fatal(err)
	}
	readFiles(t, dir, compareFiles...)
	checkPNG(t, filepath.Join(dir, "compare.png"), 600, 600)
}

func TestFormatTable(t *testing.T) {
	got := FormatTable([]*Result{reportResult("sm+", 10, 0.03, 0.015, 0), reportResult("infaas", 20, 0.01, 0.01, 0)})
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header, a rule and two rows:\n%s", got)
	}
	for i, l := range lines {
		if n := strings.Count(l, "|"); n != len(compareColumns)+1 {
			t.Errorf("line %d has %d pipes, want %d: %s", i, n, len(compareColumns)+1, l)
		}
	}
	if !strings.HasPrefix(lines[0], "| policy | throughput (q/s) | p99 (ms) |") || !strings.HasPrefix(lines[2], "| infaas |") ||
		!strings.HasPrefix(lines[3], "| sm+ | 10.00 | 48.25 | 3.33 | 3.00 | 0.01500 | 3 | 1 | 2 | 3 |") {
		t.Errorf("table:\n%s", got)
	}
	if got := FormatTable([]*Result{{Policy: "a|b"}}); !strings.Contains(got, `| a\|b |`) {
		t.Errorf("pipe not escaped:\n%s", got)
	}
}
