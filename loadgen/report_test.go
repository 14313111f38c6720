package loadgen

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"reflect"
	"strings"
	"testing"
)

func sampleRun() (Summary, []Row) {
	rows := []Row{
		{Second: 0, Offered: 10, Sent: 10, Answered: 9, Refused: 1, P50Ms: 4.5, P99Ms: 9.25, Variants: map[string]int{"a.v1": 6, "b.v2": 3}},
		{Second: 1, Offered: 20.5, Sent: 21, Dropped: 1, Answered: 18, Failed: 2, Violations: 3, P50Ms: 5, P99Ms: 30, Variants: map[string]int{"b.v2": 18}},
		{Second: 2, Offered: 0},
	}
	for i := range 9 {
		rows[0].Variants[string(rune('c'+i))+".v"] = 1
	}
	sum := Summary{
		Schedule: "steps:10@1s,20.5@1s", Arrivals: Poisson, Seed: 1, DurationS: 2, ElapsedS: 2.4,
		Sent: 31, Dropped: 1, Answered: 27, Refused: 1, Failed: 2, Violations: 3, ViolationRate: 3.0 / 27,
		P50Ms: 4.9, P99Ms: 29, P999Ms: 30, MeanMs: 6, MaxMs: 31, OfferedQPS: 15.5, ThroughputQPS: 11.25,
		TightestTargetMs: 20, MaxLagMs: 0.4,
		Statuses: map[string]int{"200": 27, "503": 1, "timeout": 2},
		Variants: map[string]int{"a.v1": 6, "b.v2": 21},
		Sets:     []SetSummary{{Label: "m ≤20ms", Sent: 31, Answered: 27, Refused: 1, Failed: 2, Violations: 3, TargetMs: 20, P50Ms: 4.9, P99Ms: 29}},
	}
	return sum, rows
}

func TestWriteCSV(t *testing.T) {
	_, rows := sampleRun()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(rows)+1 || !reflect.DeepEqual(recs[0], csvHeader) {
		t.Fatalf("records %v", recs)
	}
	if got := strings.Join(recs[2], "|"); got != "1|20.500|21|1|18|0|2|3|5.000|30.000|b.v2=18" {
		t.Errorf("second 1: %s", got)
	}
	if !strings.HasPrefix(recs[1][10], "a.v1=6;b.v2=3;") {
		t.Errorf("variants column %q: want the most used first", recs[1][10])
	}
}

func TestWriteJSON(t *testing.T) {
	sum, _ := sampleRun()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sum); err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, sum) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", back, sum)
	}
	if !strings.Contains(buf.String(), `"violation_rate"`) || !strings.Contains(buf.String(), `"p999_ms"`) {
		t.Errorf("JSON keys: %s", buf.String())
	}
}

func TestWritePlot(t *testing.T) {
	sum, rows := sampleRun()
	for name, rows := range map[string][]Row{"variants": rows, "no variants": {{Second: 0, Offered: 1}}} {
		var buf bytes.Buffer
		if err := WritePlot(&buf, rows, sum); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
			t.Errorf("%s: image %v", name, b)
		}
	}
	if err := WritePlot(&bytes.Buffer{}, nil, sum); err == nil {
		t.Error("plotted no rows")
	}
}

func TestFormat(t *testing.T) {
	sum, rows := sampleRun()
	line := FormatRow(rows[0])
	if !strings.Contains(line, "a.v1:6 b.v2:3 c.v:1 +8") {
		t.Errorf("row line %q", line)
	}
	if len(strings.Fields(RowHeader)) < 10 {
		t.Errorf("header %q", RowHeader)
	}
	text := FormatSummary(sum)
	for _, want := range []string{"sent 31", "answered 27", "violations 3 (11.11% of answered)", "p99.9 30.00 ms", "throughput 11.2 QPS", "timeout:2"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
}
