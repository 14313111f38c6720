package autoscale

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
)

// world model for the property tests: random architectures with random
// variants, workers with tight memory, a constant demand per architecture
// spread over the ready replicas in proportion to their capacity, and
// loads that take two steps.
type propSim struct {
	st      State
	demand  map[string]float64 // per architecture
	traffic map[string]Traffic // per architecture
	loading map[string]int     // replica → steps left
	next    int
	cfg     Config
}

func newPropSim(r *rand.Rand, cfg Config) *propSim {
	s := &propSim{demand: map[string]float64{}, traffic: map[string]Traffic{}, loading: map[string]int{}, cfg: cfg}
	cls := []catalog.HardwareClass{catalog.CPUClass(1), catalog.CPUClass(2), catalog.CPUClass(4)}
	s.st.Classes = cls
	for i := range 1 + r.IntN(4) {
		h := cls[r.IntN(len(cls))]
		s.st.Workers = append(s.st.Workers, Worker{ID: fmt.Sprintf("w%d", i), Class: h.Name, Cores: h.Cores,
			MemoryBytes: int64(1+r.IntN(3)) << 28, Healthy: true, Removable: r.IntN(2) == 0})
	}
	for a := range 1 + r.IntN(3) {
		arch := fmt.Sprintf("a%d", a)
		for j := range 1 + r.IntN(4) {
			h := cls[r.IntN(len(cls))]
			mb := []int{1, 4, 8}[r.IntN(3)]
			p1 := 2 + 28*r.Float64()
			v := variant(fmt.Sprintf("%s.v%d", arch, j), arch, h.Name, 1+r.IntN(h.Cores), mb, 70+25*r.Float64(), p1, p1*(0.4+0.6*float64(mb))*(0.7+0.6*r.Float64()))
			v.Profile.PeakMemoryBytes = int64(10+r.IntN(200)) << 20
			s.st.Variants = append(s.st.Variants, v)
		}
		s.demand[arch] = []float64{0, 5, 50, 300, 2000}[r.IntN(5)]
		s.traffic[arch] = Traffic{LatencyMs: []float64{0, 50, 200}[r.IntN(3)], MinAccuracy: []float64{0, 80}[r.IntN(2)]}
	}
	s.st.Traffic = map[string]Traffic{}
	for _, v := range s.st.Variants {
		s.st.Traffic[v.Name] = s.traffic[v.Architecture]
	}
	// One replica per architecture where one fits.
	w := newWorld(&s.st, nil)
	for a := range s.demand {
		for _, in := range w.instances(a) {
			s.refresh()
			rm := newRoom(newWorld(&s.st, nil))
			if hosts := rm.place(w, in, 1, nil); hosts != nil {
				s.add(in.v.Name, hosts[0], false)
				break
			}
		}
	}
	s.refresh()
	return s
}

func (s *propSim) add(variant, worker string, loading bool) {
	s.next++
	id := fmt.Sprintf("r%d", s.next)
	s.st.Replicas = append(s.st.Replicas, Replica{ID: id, Worker: worker, Variant: variant, Loading: loading})
	if loading {
		s.loading[id] = 2
	}
}

// refresh recomputes free memory and spreads demand.
func (s *propSim) refresh() {
	w := newWorld(&s.st, nil)
	used := map[string]int64{}
	for _, r := range s.st.Replicas {
		in := w.inst(r.Variant, w.workers[r.Worker].Class)
		used[r.Worker] += in.memory
	}
	for i := range s.st.Workers {
		s.st.Workers[i].FreeMemoryBytes = s.st.Workers[i].MemoryBytes - used[s.st.Workers[i].ID]
	}
	caps := map[string]float64{}
	total := map[string]float64{}
	for _, r := range s.st.Replicas {
		in := w.inst(r.Variant, w.workers[r.Worker].Class)
		if r.Loading {
			continue
		}
		c, _, _ := in.capacity(s.traffic[in.v.Architecture].LatencyMs, s.cfg.LatencyShare)
		caps[r.ID] = c
		total[in.v.Architecture] += c
	}
	for i := range s.st.Replicas {
		r := &s.st.Replicas[i]
		a := w.variants[r.Variant].Architecture
		r.Demand = 0
		if total[a] > 0 {
			r.Demand = s.demand[a] * caps[r.ID] / total[a]
		}
	}
}

func (s *propSim) apply(t *testing.T, acts []Action) {
	t.Helper()
	for _, a := range acts {
		switch a.Kind {
		case Replicate, Switch, Downgrade:
			s.add(a.Variant, a.Worker, true)
		case Unload:
			i := slices.IndexFunc(s.st.Replicas, func(r Replica) bool { return r.ID == a.Replica })
			if i < 0 {
				t.Fatalf("unload of unknown replica %s", a.Replica)
			}
			s.st.Replicas = slices.Delete(s.st.Replicas, i, i+1)
		default:
			t.Fatalf("model autoscaler returned a worker action %v", a)
		}
	}
	for i := range s.st.Replicas {
		r := &s.st.Replicas[i]
		if n, ok := s.loading[r.ID]; ok {
			if n <= 1 {
				r.Loading = false
				delete(s.loading, r.ID)
			} else {
				s.loading[r.ID] = n - 1
			}
		}
	}
	s.refresh()
}

func (s *propSim) check(t *testing.T, before map[string]int) {
	t.Helper()
	w := newWorld(&s.st, nil)
	mem := map[string]int64{}
	cores := map[string]int{}
	perInst := map[[2]string]int{}
	perArch := map[string]int{}
	for _, r := range s.st.Replicas {
		wk := w.workers[r.Worker]
		in := w.inst(r.Variant, wk.Class)
		mem[r.Worker] += in.memory
		cores[r.Worker] += in.cores
		perInst[[2]string{r.Variant, wk.Class}]++
		perArch[in.v.Architecture]++
	}
	for _, wk := range s.st.Workers {
		if mem[wk.ID] > wk.MemoryBytes {
			t.Fatalf("worker %s over memory: %d of %d", wk.ID, mem[wk.ID], wk.MemoryBytes)
		}
		if cores[wk.ID] > wk.Cores {
			t.Fatalf("worker %s over cores: %d of %d", wk.ID, cores[wk.ID], wk.Cores)
		}
	}
	for k, n := range perInst {
		if n > max(s.cfg.MaxReplicas, 1) {
			t.Fatalf("%v has %d replicas, above the bound %d", k, n, s.cfg.MaxReplicas)
		}
	}
	for a, n := range before {
		if n > 0 && s.demand[a] > 0 && perArch[a] == 0 {
			t.Fatalf("architecture %s has traffic and lost its last replica", a)
		}
	}
}

func (s *propSim) archCounts() map[string]int {
	w := newWorld(&s.st, nil)
	out := map[string]int{}
	for _, r := range s.st.Replicas {
		out[w.variants[r.Variant].Architecture]++
	}
	return out
}

// TestModelsProperties runs random clusters under constant demand and
// checks the invariants after every step: no worker over memory or cores,
// no instance above MaxReplicas, no architecture with traffic left without
// a replica; and no flapping: at most one decision per architecture per
// cool-down (the unloads that complete a switch belong to it), and none at
// all in the last quarter of the run, long after the demand's one drop.
func TestModelsProperties(t *testing.T) {
	kinds := map[Kind]int{}
	defer func() {
		// The random worlds must exercise every kind of decision, or the
		// invariants above hold vacuously.
		for _, k := range []Kind{Replicate, Switch, Downgrade, Unload} {
			if kinds[k] == 0 {
				t.Errorf("no %s in any run: the generator no longer exercises it (%v)", k, kinds)
			}
		}
		t.Logf("actions: %v", kinds)
	}()
	for seed := range uint64(100) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			cfg, _ := Config{UpWindow: 2 * time.Second, DownWindow: 5 * time.Second, Cooldown: 5 * time.Second, IdleUnload: -1, MaxReplicas: 3}.WithDefaults()
			s := newPropSim(r, cfg)
			m, err := NewModels(cfg)
			if err != nil {
				t.Fatal(err)
			}
			last := map[string]time.Time{}
			const steps, drop = 400, 100
			for i := range steps {
				now := t0.Add(time.Duration(i) * time.Second)
				if i == drop { // the peak ends: a tenth of the demand from here on
					for a := range s.demand {
						s.demand[a] /= 10
					}
					s.refresh()
				}
				before := s.archCounts()
				res := m.Step(now, s.st)
				decided := map[string]bool{}
				for _, a := range res.Actions {
					if a.Reason == ReasonSwitchDone {
						continue
					}
					decided[a.Architecture] = true
				}
				for a := range decided {
					if l, ok := last[a]; ok && now.Sub(l) < cfg.Cooldown {
						t.Fatalf("step %d: %s decided again %s after its last decision (cool-down %s): %v", i, a, now.Sub(l), cfg.Cooldown, res.Actions)
					}
					last[a] = now
					if i > steps*3/4 {
						t.Fatalf("step %d: still acting under a constant load: %v", i, res.Actions)
					}
				}
				for _, a := range res.Actions {
					kinds[a.Kind]++
				}
				s.apply(t, res.Actions)
				s.check(t, before)
			}
		})
	}
}

// TestClusterProperties: the cluster autoscaler stays within its bounds
// however its inputs move.
func TestClusterProperties(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 9))
		cfg := ClusterConfig{MinWorkers: 1 + r.IntN(2), MaxWorkers: 3 + r.IntN(3), OutWindow: time.Second, IdleCooldown: 3 * time.Second, Interval: time.Second}
		c := cluster(t, cfg)
		st := State{Classes: []catalog.HardwareClass{catalog.CPUClass(1)}}
		for i := range cfg.MinWorkers {
			st.Workers = append(st.Workers, cpuWorker(fmt.Sprintf("w%d", i), 1))
		}
		n := len(st.Workers)
		for i := range 300 {
			now := t0.Add(time.Duration(i) * time.Second)
			var short []Shortage
			if r.IntN(3) == 0 {
				short = []Shortage{{Class: "cpu-1", Reason: "room"}}
			}
			for j := range st.Workers {
				st.Workers[j].Utilization = r.Float64()
			}
			for _, a := range c.Step(now, st, short) {
				switch a.Kind {
				case AddWorker:
					st.Workers = append(st.Workers, Worker{ID: fmt.Sprintf("w%d", n), Class: "cpu-1", Cores: 1, MemoryBytes: 1 << 30, FreeMemoryBytes: 1 << 30, Healthy: true, Removable: true})
					n++
				case DrainWorker:
					for j := range st.Workers {
						if st.Workers[j].ID == a.Worker {
							st.Workers[j].Draining = true
						}
					}
				case RemoveWorker:
					i := slices.IndexFunc(st.Workers, func(w Worker) bool { return w.ID == a.Worker })
					if i < 0 || !st.Workers[i].Removable {
						t.Fatalf("seed %d: removed %s, unknown or not removable", seed, a.Worker)
					}
					st.Workers = slices.Delete(st.Workers, i, i+1)
				}
				if len(st.Workers) < cfg.MinWorkers || len(st.Workers) > cfg.MaxWorkers {
					t.Fatalf("seed %d step %d: %d workers, outside [%d, %d]", seed, i, len(st.Workers), cfg.MinWorkers, cfg.MaxWorkers)
				}
			}
		}
	}
}
