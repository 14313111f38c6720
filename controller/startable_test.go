package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
)

// TestStartableLeavesRefusedClassesOut: a class the provider refused is
// out of the autoscalers' catalogue until its time is up, unless a worker
// of it has joined; the names left out say which.
func TestStartableLeavesRefusedClassesOut(t *testing.T) {
	s := &scaler{noStart: map[string]time.Time{}}
	classes := []catalog.HardwareClass{catalog.CPUClass(1), catalog.CPUClass(2), catalog.CPUClass(16)}
	names := func(hs []catalog.HardwareClass) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return out
	}
	now := time.Unix(1000, 0)
	if in, out := s.startable(classes, nil, now); len(in) != 3 || out != nil {
		t.Fatalf("nothing refused: in %v, out %v", names(in), out)
	}
	s.refuse("cpu-16", now.Add(noStartFor))
	s.refuse("cpu-1", now.Add(noStartFor))
	in, out := s.startable(classes, map[string]bool{"cpu-1": true}, now.Add(time.Minute))
	if !slices.Equal(names(in), []string{"cpu-1", "cpu-2"}) || !slices.Equal(out, []string{"cpu-16"}) {
		t.Errorf("cpu-16 refused, cpu-1 refused but joined: in %v, out %v", names(in), out)
	}
	in, out = s.startable(classes, nil, now.Add(noStartFor))
	if len(in) != 3 || out != nil || len(s.noStart) != 0 {
		t.Errorf("after the refusal's time: in %v, out %v, still refused %v", names(in), out, s.noStart)
	}
}
