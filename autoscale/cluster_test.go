package autoscale

import (
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
)

func cluster(t *testing.T, cfg ClusterConfig) *Cluster {
	t.Helper()
	c, err := NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClusterAddsWorkerForShortClass(t *testing.T) {
	st := State{Classes: classes(), Workers: []Worker{cpuWorker("w1", 1)}}
	short := []Shortage{{Class: "cpu-1", Reason: "no room"}}
	c := cluster(t, ClusterConfig{MaxWorkers: 3, OutWindow: 2 * time.Second, Interval: time.Second})
	if a := c.Step(t0, st, short); len(a) != 0 {
		t.Fatalf("added before the window held: %v", a)
	}
	if a := c.Step(t0.Add(time.Second), st, short); len(a) != 0 {
		t.Fatalf("added before the window held: %v", a)
	}
	a := c.Step(t0.Add(2*time.Second), st, short)
	if len(a) != 1 || a[0].Kind != AddWorker || a[0].Class != "cpu-1" || a[0].Reason != ReasonShortage {
		t.Fatalf("want a cpu-1 worker, got %v", a)
	}
	// One start in flight per class: no second while it joins.
	st.Starting = map[string]int{"cpu-1": 1}
	for i := 3; i < 10; i++ {
		if a := c.Step(t0.Add(time.Duration(i)*time.Second), st, short); len(a) != 0 {
			t.Fatalf("second start while one is in flight: %v", a)
		}
	}
}

func TestClusterCeilingAndUtilisation(t *testing.T) {
	hot := cpuWorker("w1", 1)
	hot.Utilization = 0.95
	st := State{Classes: classes(), Workers: []Worker{hot}}
	c := cluster(t, ClusterConfig{MaxWorkers: 1, OutWindow: time.Second})
	for i := range 10 {
		if a := c.Step(t0.Add(time.Duration(i)*time.Second), st, nil); len(a) != 0 {
			t.Fatalf("added above the ceiling: %v", a)
		}
	}
	c = cluster(t, ClusterConfig{MaxWorkers: 2, OutWindow: time.Second})
	var got []Action
	for i := range 3 {
		got = append(got, c.Step(t0.Add(time.Duration(i)*time.Second), st, nil)...)
	}
	if len(got) != 1 || got[0].Reason != ReasonUtilization {
		t.Fatalf("want one worker added for utilisation, got %v", got)
	}
}

func TestClusterDrainsThenRemovesIdleWorker(t *testing.T) {
	added := cpuWorker("w2", 1)
	added.Removable = true
	st := State{Classes: classes(), Workers: []Worker{cpuWorker("w1", 1), added},
		Replicas: []Replica{{ID: "r1", Worker: "w1", Variant: "v", Demand: 50}, {ID: "r2", Worker: "w2", Variant: "v"}}}
	c := cluster(t, ClusterConfig{MinWorkers: 1, MaxWorkers: 2, IdleCooldown: 5 * time.Second, Interval: time.Second})
	var acts []Action
	now := t0
	for ; now.Before(t0.Add(5 * time.Second)); now = now.Add(time.Second) {
		acts = append(acts, c.Step(now, st, nil)...)
	}
	if len(acts) != 0 {
		t.Fatalf("acted before the cool-down: %v", acts)
	}
	acts = c.Step(now, st, nil)
	if len(acts) != 1 || acts[0].Kind != DrainWorker || acts[0].Worker != "w2" {
		t.Fatalf("want w2 drained, got %v", acts)
	}
	// Drained: its replica is gone.
	st.Workers[1].Draining = true
	st.Replicas = st.Replicas[:1]
	now = now.Add(time.Second)
	acts = c.Step(now, st, nil)
	if len(acts) != 1 || acts[0].Kind != RemoveWorker || acts[0].Worker != "w2" {
		t.Fatalf("want w2 removed, got %v", acts)
	}
	// The floor: w1 is never removed (not removable), nor would be at min.
	st.Workers = st.Workers[:1]
	st.Workers[0].Removable = true
	st.Replicas = nil
	for i := range 60 {
		if a := c.Step(now.Add(time.Duration(i)*time.Second), st, nil); len(a) != 0 {
			t.Fatalf("went below the floor: %v", a)
		}
	}
}

func TestClusterKeepsBusyWorker(t *testing.T) {
	w2 := cpuWorker("w2", 1)
	w2.Removable = true
	st := State{Classes: []catalog.HardwareClass{catalog.CPUClass(1)}, Workers: []Worker{cpuWorker("w1", 1), w2},
		Replicas: []Replica{{ID: "r2", Worker: "w2", Variant: "v", Outstanding: 1}}}
	c := cluster(t, ClusterConfig{IdleCooldown: time.Second, Interval: time.Second})
	for i := range 30 {
		if a := c.Step(t0.Add(time.Duration(i)*time.Second), st, nil); len(a) != 0 {
			t.Fatalf("drained a busy worker: %v", a)
		}
	}
}
