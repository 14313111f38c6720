package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseInterference(t *testing.T) {
	got, err := parseInterference("0@60s+30s*4, 1@1m+5s*2.5")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Worker != 0 || got[0].At != time.Minute || got[0].For != 30*time.Second || got[0].Factor != 4 ||
		got[1].Worker != 1 || got[1].Factor != 2.5 {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"0@60s", "x@1s+1s*2", "0@1s+1s*y", "0@1s+zz*2"} {
		if _, err := parseInterference(bad); err == nil || !strings.Contains(err.Error(), "W@AT+FOR*FACTOR") {
			t.Errorf("%q: want an error showing the syntax, got %v", bad, err)
		}
	}
}

// TestSimulateCompare runs `infaas simulate --compare --out` on a short
// fluctuating load and checks what it writes.
func TestSimulateCompare(t *testing.T) {
	out := t.TempDir()
	if err := runSimulate(context.Background(), []string{"--workload", "fluctuating:20s", "--compare", "--out", out}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"compare.md", "compare.csv", "compare.png", "infaas/report.md", "infaas/timeline.png", "sm+/series.csv", "clipper+/events.csv"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "compare.md"))
	if !strings.Contains(string(md), "fewer missed queries than sm+") {
		t.Errorf("compare.md lacks the paper's target check:\n%s", md)
	}
	if err := runSimulate(context.Background(), []string{"--catalog", "nonesuch.json"}); err == nil {
		t.Error("a missing catalogue file must be an error")
	}
	if err := runSimulate(context.Background(), []string{"--policy", "sagemaker"}); err == nil || !strings.Contains(err.Error(), "sm+") {
		t.Errorf("an unknown policy: want an error listing the known ones, got %v", err)
	}
}
