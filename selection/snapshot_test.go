package selection

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/infaas/infaas/catalog"
)

func TestP99MatchesCatalog(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		w := genWorld(rng, 20, 1, false)
		s := mustSnapshot(t, w.cat, w.st)
		for i := range s.NumVariants() {
			v := s.Variant(int32(i))
			for b := 1; b <= 80; b++ {
				if got, want := s.p99(int32(i), b), v.Profile.P99At(b); got != want {
					t.Fatalf("%s at batch %d: p99 %v, catalog says %v (profile %v)", v.Name, b, got, want, v.Profile.LatencyMs)
				}
			}
		}
	}
	// Without a profile a variant is infinitely slow, not free.
	v := mkVariant("x.v", "x", cpuClass, 1, 8, 90, 1, 2, 100, 10, 1)
	v.Profile.LatencyMs = nil
	s := mustSnapshot(t, Catalog{Variants: []catalog.Variant{v}}, State{})
	if p := s.p99(0, 1); !math.IsInf(p, 1) {
		t.Errorf("unprofiled p99 = %v, want +Inf", p)
	}
}

func TestCostPer1k(t *testing.T) {
	s := mustSnapshot(t, mnistCatalog(), State{})
	cases := []struct {
		variant string
		want    float64
	}{
		{mlpS, cpuClass.CostPerQuery(1, 20000) * 1000},
		{cnnL4, cpuClass.CostPerQuery(4, 300) * 1000},
		{cnnLG, gpuClass.CostPerQuery(1, 15000) * 1000},
	}
	for _, tc := range cases {
		t.Run(tc.variant, func(t *testing.T) {
			if got := s.VariantCostPer1k(refInstance(s, tc.variant)); got != tc.want {
				t.Errorf("cost = %v, want %v", got, tc.want)
			}
		})
	}

	// Unknown class or throughput: infinite cost.
	cat := mnistCatalog()
	cat.Classes = cat.Classes[:1] // no gpu price
	cat.Variants[0].Profile.ThroughputQPS = 0
	cat.Variants[0].Profile.LatencyMs = nil
	s = mustSnapshot(t, cat, State{})
	for _, name := range []string{mlpS, cnnLG} {
		if c := s.VariantCostPer1k(refInstance(s, name)); !math.IsInf(c, 1) {
			t.Errorf("%s: cost %v, want +Inf", name, c)
		}
	}
	// Throughput missing but latency known: derived from p99 at max batch.
	cat = mnistCatalog()
	cat.Variants[0].Profile.ThroughputQPS = 0
	s = mustSnapshot(t, cat, State{})
	if got, want := s.VariantCostPer1k(refInstance(s, mlpS)), cpuClass.CostPerQuery(1, 8*1000/0.5)*1000; got != want {
		t.Errorf("derived cost = %v, want %v", got, want)
	}
}

func TestNewSnapshotErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Catalog, *State)
		want string
	}{
		{"variant twice", func(c *Catalog, _ *State) { c.Variants = append(c.Variants, c.Variants[0]) }, "variant mlp-s.cpu.t1.b8 is listed twice"},
		{"architecture twice", func(c *Catalog, _ *State) { c.Architectures = append(c.Architectures, arch("mlp-s")) }, "architecture mlp-s is listed twice"},
		{"class twice", func(c *Catalog, _ *State) { c.Classes = append(c.Classes, cpuClass) }, "hardware class cpu is listed twice"},
		{"worker twice", func(_ *Catalog, s *State) { s.Workers = append(s.Workers, s.Workers[0]) }, "worker w1 is listed twice"},
		{"replica twice", func(_ *Catalog, s *State) { s.Replicas = append(s.Replicas, s.Replicas[0]) }, "replica r-m2 is listed twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, st := mnistCatalog(), mnistState()
			tc.edit(&c, &st)
			_, err := NewSnapshot(c, st)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

func TestSnapshotIndexes(t *testing.T) {
	cat := mnistCatalog()
	// A variant of an architecture that is not listed: reachable by its
	// names, in no use case.
	cat.Variants = append(cat.Variants, mkVariant("lone.v1", "lone", cpuClass, 1, 1, 50, 1, 1, 1000, 10, 1))
	st := mnistState().with(func(st *State) {
		st.Replicas = append(st.Replicas, replica("r-ghost", "ghost.v", "w1"), replica("r-lost", mlpS, "w9"))
	})
	s := mustSnapshot(t, cat, st)

	if got := s.Skipped(); len(got) != 2 || !strings.Contains(got[0], "ghost.v") || !strings.Contains(got[1], "w9") {
		t.Errorf("Skipped = %q", got)
	}
	if s.NumVariants() != 6 || s.NumWorkers() != 3 || s.NumReplicas() != 2 {
		t.Errorf("sizes %d %d %d", s.NumVariants(), s.NumWorkers(), s.NumReplicas())
	}
	resolve := []struct {
		kind Kind
		name string
		want Kind
		ok   bool
	}{
		{KindAuto, "lone", KindArchitecture, true},
		{KindAuto, "lone.v1", KindVariant, true},
		{KindAuto, "classification/mnist", KindUseCase, true},
		{KindUseCase, "cnn-m", KindUseCase, false},
		{KindAuto, "nope", KindAuto, false},
	}
	for _, r := range resolve {
		if k, ok := s.Resolve(r.kind, r.name); k != r.want || ok != r.ok {
			t.Errorf("Resolve(%s, %q) = %s, %v; want %s, %v", r.kind, r.name, k, ok, r.want, r.ok)
		}
	}
	uc, _ := s.candidates(KindUseCase, "classification/mnist")
	if len(uc) != 5 {
		t.Errorf("use case has %d variants, want 5 (lone belongs to none)", len(uc))
	}
	if !slices.IsSortedFunc(uc, func(a, b int32) int { return cmpCost(s, a, b) }) {
		t.Error("use-case candidates not in cost order")
	}
	var d Decision
	Select(s, &Request{Name: "lone"}, t0, &d)
	if d.Action != LoadAndServe || s.Variant(d.Variant).Name != "lone.v1" {
		t.Errorf("lone architecture: %+v", viewOf(s, &d))
	}
}

// refInstance is the index of variant name's reference-class instance.
func refInstance(s *Snapshot, name string) int32 {
	return s.cat.vnames[s.cat.names[name].variant].ref
}

func cmpCost(s *Snapshot, a, b int32) int {
	ca, cb := s.VariantCostPer1k(a), s.VariantCostPer1k(b)
	switch {
	case ca < cb || ca == cb && a < b:
		return -1
	case ca == cb && a == b:
		return 0
	}
	return 1
}

// TestWithState: refreshing the state decides exactly like a fresh build.
func TestWithState(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for range 50 {
		w := genWorld(rng, 1+rng.IntN(60), rng.IntN(8), true)
		w2 := genWorld(rand.New(rand.NewPCG(rng.Uint64(), 0)), len(w.cat.Variants), len(w.st.Workers), true)
		for i := range w2.st.Replicas { // name w's variants
			w2.st.Replicas[i].Variant = w.cat.Variants[rng.IntN(len(w.cat.Variants))].Name
		}
		old := mustSnapshot(t, w.cat, w.st)
		fresh := mustSnapshot(t, w.cat, w2.st)
		derived, err := old.WithState(w2.st)
		if err != nil {
			t.Fatal(err)
		}
		if len(derived.Skipped()) != 0 || derived.NumReplicas() != len(w2.st.Replicas) {
			t.Fatalf("replicas skipped: %q", derived.Skipped())
		}
		for range 40 {
			r := genRequest(rng, &w)
			var a, b Decision
			Select(fresh, &r, t0, &a)
			Select(derived, &r, t0, &b)
			if a != b {
				t.Fatalf("WithState disagrees with NewSnapshot for %+v:\n%+v\n%+v", r, a, b)
			}
		}
	}
}
