package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/events"
)

func TestPrintEvent(t *testing.T) {
	e := events.Event{Seq: 7, Time: time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC), Source: "model-autoscaler", Action: "replicate",
		Reason: "demand-near-capacity", Variant: "resnet18-fp32-b8", Worker: "w2", Message: "demand near capacity",
		Numbers: map[string]float64{"demand_qps": 120, "capacity_qps": 95.12345}}
	var b bytes.Buffer
	if err := printEvent(&b, e, false); err != nil {
		t.Fatal(err)
	}
	want := " model-autoscaler replicate resnet18-fp32-b8 on w2: demand near capacity [capacity_qps=95.123 demand_qps=120]\n"
	if got := b.String(); !strings.HasSuffix(got, want) || !strings.HasPrefix(got, e.Time.Local().Format("15:04:05.000")) {
		t.Fatalf("got %q", got)
	}
	b.Reset()
	if err := printEvent(&b, e, true); err != nil {
		t.Fatal(err)
	}
	var back events.Event
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Seq != 7 || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("NDJSON %q: %v", b.String(), err)
	}
}
