package selection

import (
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
)

// A world with two CPU classes, for per-class profiles:
//
//	cpu-1  4 cores, $0.02 per core-hour: slow and cheap
//	cpu-2  4 cores, $0.10 per core-hour: fast and dear
//
//	two.t1.b8   profiled on cpu-1 (reference): p99 4 ms (b1) .. 12 ms (b8), 1,000/s
//	            and on cpu-2:                  p99 1 ms (b1) ..  3 ms (b8), 4,000/s
//	            cheaper on cpu-1 ($5.6e-6 per 1k) than on cpu-2 ($6.9e-6)
//	one.t1.b8   profiled on cpu-1 only:        p99 2 ms .. 6 ms, 2,000/s
//	workers w1 cpu-1 (util 10%), w2 cpu-2 (util 50%)

var (
	slowClass = catalog.HardwareClass{Name: "cpu-1", Provider: "cpu", Cores: 4, MemoryBytes: 16 * gib64, PricePerHour: 0.08}
	fastClass = catalog.HardwareClass{Name: "cpu-2", Provider: "cpu", Cores: 4, MemoryBytes: 16 * gib64, PricePerHour: 0.40}
)

const (
	twoV = "two.t1.b8"
	oneV = "one.t1.b8"
)

func classesCatalog() Catalog {
	two := mkVariant(twoV, "two", slowClass, 1, 8, 97, 4, 12, 1000, 100, 256<<20)
	fast := mkVariant("", "", fastClass, 1, 8, 0, 1, 3, 4000, 80, 300<<20).Profile
	two.Profiles = map[string]catalog.Profile{fastClass.Name: fast}
	one := mkVariant(oneV, "one", slowClass, 1, 8, 95, 2, 6, 2000, 50, 128<<20)
	return Catalog{
		Architectures: []catalog.Architecture{arch("two"), arch("one")},
		Variants:      []catalog.Variant{two, one},
		Classes:       []catalog.HardwareClass{slowClass, fastClass},
	}
}

func classesState() State {
	return State{Workers: []Worker{
		worker("w1", slowClass, 0.1, 8*gib64),
		worker("w2", fastClass, 0.5, 8*gib64),
	}}
}

// TestSelectPerClass: each (variant, class) is its own candidate, with
// that class's profile and cost, placed only on workers of that class.
func TestSelectPerClass(t *testing.T) {
	slowCost := slowClass.CostPerQuery(1, 1000) * 1000
	fastCost := fastClass.CostPerQuery(1, 4000) * 1000
	if !(slowCost < fastCost) {
		t.Fatalf("fixture: cpu-1 should be the cheaper (%v vs %v)", slowCost, fastCost)
	}
	onW1 := func(st *State) { st.Replicas = []Replica{replica("r1", twoV, "w1")} }
	cases := []struct {
		name  string
		state State
		req   Request
		want  view
		class string // of the serving instance
		load  string // class of the instance loaded
		est   float64
		cost  float64
		check func(t *testing.T, s *Snapshot, d *Decision, ex Explanation)
	}{
		{
			name:  "tight target: the fast class's instance, on its worker",
			state: classesState(),
			req:   Request{Name: "two", LatencyMs: 2}, // p99 1 ms on cpu-2, 4 ms on cpu-1; the cold start misses it
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: twoV, Worker: "w2", Load: twoV, LoadWorker: "w2"},
			class: "cpu-2", load: "cpu-2", est: 81, cost: fastCost,
		},
		{
			name:  "loose target: the cheaper class",
			state: classesState(),
			req:   Request{Name: "two", LatencyMs: 200},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Met: true, Variant: twoV, Worker: "w1", Load: twoV, LoadWorker: "w1"},
			class: "cpu-1", load: "cpu-1", est: 104, cost: slowCost,
		},
		{
			name:  "loaded replica on a cpu-1 worker is estimated with the cpu-1 profile",
			state: classesState().with(func(st *State) { onW1(st); st.Replicas[0].QueuedSamples = 10 }),
			req:   Request{Name: "two", LatencyMs: 50},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: twoV, Replica: "r1", Worker: "w1"},
			class: "cpu-1", est: 4 + 10, cost: slowCost, // p99 4 ms + 10 samples at 1,000/s
		},
		{
			name:  "loaded cpu-1 replica too slow: the cpu-2 instance loads on the cpu-2 worker meanwhile",
			state: classesState().with(onW1),
			req:   Request{Name: "two", LatencyMs: 2},
			want: view{Action: ServeAndLoad, Reason: ReasonLoading, Variant: twoV, Replica: "r1", Worker: "w1",
				Load: twoV, LoadWorker: "w2"},
			class: "cpu-1", load: "cpu-2", est: 4, cost: slowCost,
		},
		{
			name: "cpu-2 worker full: the cpu-1 worker is never used for the cpu-2 profile",
			state: classesState().with(func(st *State) {
				onW1(st)
				st.worker("w2").FreeMemoryBytes = 0
			}),
			req:   Request{Name: "two", LatencyMs: 2},
			want:  view{Action: Serve, Reason: ReasonNoCapacity, Variant: twoV, Replica: "r1", Worker: "w1", Unplaced: twoV},
			class: "cpu-1", est: 4, cost: slowCost,
			check: func(t *testing.T, s *Snapshot, d *Decision, ex Explanation) {
				if c := s.Variant(d.Unplaced).Hardware; c != "cpu-2" {
					t.Errorf("Unplaced is the %s instance, want cpu-2", c)
				}
				if msg := d.Message(s); !strings.Contains(msg, twoV+" on class cpu-2 would be preferred but fits no worker") {
					t.Errorf("Message = %q", msg)
				}
			},
		},
		{
			name:  "no profile for cpu-2: never placed on the cpu-2 worker",
			state: classesState().with(func(st *State) { st.worker("w1").FreeMemoryBytes = 0 }),
			req:   Request{Name: "one"},
			want:  view{Action: Refuse, Reason: ReasonNoCapacity, Unplaced: oneV},
			check: func(t *testing.T, s *Snapshot, d *Decision, ex Explanation) {
				if len(ex.Candidates) != 1 || ex.Candidates[0].Class != "cpu-1" {
					t.Fatalf("candidates %+v, want the cpu-1 instance only", ex.Candidates)
				}
				want := "no worker fits: 1 is of another class (worker is class cpu-2; this profile is for cpu-1), 1 lack memory"
				if p := ex.Candidates[0].Placement; !strings.HasPrefix(p, want) {
					t.Errorf("Placement = %q, want it to start %q", p, want)
				}
			},
		},
		{
			name:  "no profile for cpu-2, cpu-1 worker unhealthy: nothing placed",
			state: classesState().with(func(st *State) { st.worker("w1").Healthy = false }),
			req:   Request{Kind: KindVariant, Name: oneV},
			want:  view{Action: Refuse, Reason: ReasonNoCapacity, Unplaced: oneV},
		},
		{
			name:  "replica on a class without a profile: kept, estimated with the reference profile",
			state: classesState().with(func(st *State) { st.Replicas = []Replica{replica("r9", oneV, "w2")} }),
			req:   Request{Name: "one", LatencyMs: 10},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: oneV, Replica: "r9", Worker: "w2"},
			class: "cpu-1", est: 2, cost: slowClass.CostPerQuery(1, 2000) * 1000,
			check: func(t *testing.T, s *Snapshot, d *Decision, ex Explanation) {
				if len(s.Skipped()) != 0 {
					t.Errorf("Skipped = %q", s.Skipped())
				}
			},
		},
		{
			name:  "explicit variant name, tight target: its cpu-2 instance",
			state: classesState(),
			req:   Request{Kind: KindVariant, Name: twoV, LatencyMs: 2},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: twoV, Worker: "w2", Load: twoV, LoadWorker: "w2"},
			class: "cpu-2", load: "cpu-2", est: 81, cost: fastCost,
		},
		{
			name:  "explicit variant name, no target: its cheaper cpu-1 instance",
			state: classesState(),
			req:   Request{Name: twoV},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Met: true, Variant: twoV, Worker: "w1", Load: twoV, LoadWorker: "w1"},
			class: "cpu-1", load: "cpu-1", est: 104, cost: slowCost,
		},
		{
			name:  "explicit variant name, loaded on cpu-2: served there",
			state: classesState().with(func(st *State) { st.Replicas = []Replica{replica("r2", twoV, "w2")} }),
			req:   Request{Name: twoV},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: twoV, Replica: "r2", Worker: "w2"},
			class: "cpu-2", est: 1, cost: fastCost,
		},
		{
			name:  "use case: instances of every variant compete",
			state: classesState(),
			req:   Request{Name: "classification/mnist", LatencyMs: 2, MinAccuracy: 96},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: twoV, Worker: "w2", Load: twoV, LoadWorker: "w2"},
			class: "cpu-2", load: "cpu-2", est: 81, cost: fastCost,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSnapshot(t, classesCatalog(), tc.state)
			var d Decision
			Select(s, &tc.req, t0, &d)
			ex := Explain(s, &tc.req, t0)
			if got := viewOf(s, &d); got != tc.want {
				t.Errorf("Select:\n got  %+v\n want %+v\n%s", got, tc.want, ex)
			}
			if ex.Decision != d {
				t.Errorf("Explain disagrees:\n Select  %+v\n Explain %+v\n%s", d, ex.Decision, ex)
			}
			if tc.class != "" {
				if c := s.Variant(d.Variant).Hardware; c != tc.class {
					t.Errorf("served by the %s instance, want %s\n%s", c, tc.class, ex)
				}
				if math.Abs(d.EstimateMs-tc.est) > 1e-9 || d.CostPer1k != tc.cost {
					t.Errorf("estimate %v ms at %v per 1k, want %v ms at %v", d.EstimateMs, d.CostPer1k, tc.est, tc.cost)
				}
			}
			if tc.load != "" {
				lv, lw := s.Variant(d.Load), s.Worker(d.LoadWorker)
				if lv.Hardware != tc.load || lw.Class.Name != tc.load {
					t.Errorf("loads the %s instance on a %s worker, want %s on %s", lv.Hardware, lw.Class.Name, tc.load, tc.load)
				}
				if msg := d.Message(s); !strings.Contains(msg, "(class "+tc.load+")") {
					t.Errorf("Message = %q, want the load's class", msg)
				}
			}
			if tc.check != nil {
				tc.check(t, s, &d, ex)
			}
		})
	}
}

// TestFixedPerClass: the fixed variant is served on whichever of its
// classes fits the request.
func TestFixedPerClass(t *testing.T) {
	p, err := Lookup("fixed", Config{Fixed: map[string]string{"two": twoV}})
	if err != nil {
		t.Fatal(err)
	}
	s := mustSnapshot(t, classesCatalog(), classesState())
	for _, tc := range []struct {
		target float64
		class  string
	}{{2, "cpu-2"}, {200, "cpu-1"}} {
		r := Request{Name: "two", LatencyMs: tc.target}
		var d Decision
		p.Select(s, &r, t0, &d)
		if d.Action != LoadAndServe || s.Variant(d.Load).Hardware != tc.class || s.Worker(d.LoadWorker).Class.Name != tc.class {
			t.Errorf("target %v: %+v, want a load of the %s instance", tc.target, viewOf(s, &d), tc.class)
		}
		if ex := p.Explain(s, &r, t0); ex.Decision != d {
			t.Errorf("Explain disagrees:\n Select  %+v\n Explain %+v", d, ex.Decision)
		}
	}
}

// TestInstances: which instances a catalog makes, and what they carry.
func TestInstances(t *testing.T) {
	cat := classesCatalog()
	two := &cat.Variants[0]
	// A profile for a class the catalog does not list is ignored, and one
	// for the reference class loses to Profile.
	two.Profiles["cpu-9"] = two.Profiles["cpu-2"]
	two.Profiles["cpu-1"] = two.Profiles["cpu-2"]
	// A variant of an unlisted reference class keeps its one instance, of
	// unknown cost.
	lone := mkVariant("lone.t1.b8", "one", catalog.HardwareClass{Name: "old", Provider: "cpu"}, 1, 8, 90, 1, 2, 100, 10, 1)
	lone.Profiles = map[string]catalog.Profile{"cpu-2": two.Profiles["cpu-2"]}
	cat.Variants = append(cat.Variants, lone)
	st := classesState().with(func(st *State) {
		st.Workers = append(st.Workers, worker("w3", catalog.HardwareClass{Name: "old", Provider: "cpu", Cores: 2, MemoryBytes: gib64}, 0, gib64))
	})
	s := mustSnapshot(t, cat, st)

	type inst struct{ name, class string }
	var got []inst
	for i := range s.NumVariants() {
		got = append(got, inst{s.Variant(int32(i)).Name, s.Variant(int32(i)).Hardware})
	}
	want := []inst{{"lone.t1.b8", "old"}, {"lone.t1.b8", "cpu-2"}, {oneV, "cpu-1"}, {twoV, "cpu-1"}, {twoV, "cpu-2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("instances %v, want %v (by name, the reference class first)", got, want)
	}
	if s.NumVariants() != 5 {
		t.Errorf("NumVariants = %d, want 5 instances", s.NumVariants())
	}

	i1, ok1 := s.Instance(twoV, "cpu-1")
	i2, ok2 := s.Instance(twoV, "cpu-2")
	if !ok1 || !ok2 {
		t.Fatal("Instance: two's instances not found")
	}
	if _, ok := s.Instance(twoV, "cpu-9"); ok {
		t.Error("an instance for an unlisted class")
	}
	if _, ok := s.Instance("nope", "cpu-1"); ok {
		t.Error("an instance of an unknown variant")
	}
	if v := s.Variant(i1); v.Profile.ThroughputQPS != 1000 || v.Profile.P99At(1) != 4 {
		t.Errorf("cpu-1 instance has profile %+v, want the reference profile", v.Profile)
	}
	if v := s.Variant(i2); v.Profile.ThroughputQPS != 4000 || v.Profile.P99At(8) != 3 || v.Profile.PeakMemoryBytes != 300<<20 {
		t.Errorf("cpu-2 instance has profile %+v, want the cpu-2 profile", v.Profile)
	}
	if c := s.VariantCostPer1k(i2); c != fastClass.CostPerQuery(1, 4000)*1000 {
		t.Errorf("cpu-2 instance costs %v", c)
	}
	lo, _ := s.Instance("lone.t1.b8", "old")
	if c := s.VariantCostPer1k(lo); !math.IsInf(c, 1) {
		t.Errorf("instance of an unlisted reference class costs %v, want +Inf", c)
	}

	// Name lookups resolve to instances in (cost, index) order.
	for _, tc := range []struct {
		name string
		n    int
	}{{twoV, 2}, {"two", 2}, {"one", 3}, {"classification/mnist", 5}} {
		cands, ok := s.candidates(KindAuto, tc.name)
		if !ok || len(cands) != tc.n {
			t.Errorf("%s: %d candidates, want %d instances", tc.name, len(cands), tc.n)
		}
		if !slices.IsSortedFunc(cands, func(a, b int32) int { return cmpCost(s, a, b) }) {
			t.Errorf("%s: candidates not in cost order", tc.name)
		}
	}

	// The instance of an unlisted reference class is placed on a worker of
	// that class only; explanations name the class.
	var d Decision
	r := Request{Name: "lone.t1.b8", LatencyMs: 100}
	Select(s, &r, t0, &d)
	ex := Explain(s, &r, t0)
	if ex.Decision != d {
		t.Fatalf("Explain disagrees:\n Select  %+v\n Explain %+v", d, ex.Decision)
	}
	if d.Action != LoadAndServe || s.Variant(d.Load).Hardware != "cpu-2" {
		t.Errorf("lone: %+v, want the cpu-2 instance loaded (the old one costs +Inf)\n%s", viewOf(s, &d), ex)
	}
	out := ex.String()
	for _, want := range []string{"lone.t1.b8 on cpu-2 (", "lone.t1.b8 on old (", "placement: w3 ", "loading lone.t1.b8 on cpu-2 on w2"} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
}

// TestLiveCountsSpreadLoad: two equal idle replicas by the state; the
// dispatcher's live count of what it sent since says the first is busy,
// so the next query goes to the second — and back when that one is busier.
func TestLiveCountsSpreadLoad(t *testing.T) {
	st := State{Workers: []Worker{worker("w1", slowClass, 0.1, 8*gib64), worker("w3", slowClass, 0.1, 8*gib64)}}
	var a, b atomic.Int64
	ra, rb := replica("ra", twoV, "w1"), replica("rb", twoV, "w3")
	ra.Live, rb.Live = &a, &b
	st.Replicas = []Replica{ra, rb}
	s, err := NewSnapshot(classesCatalog(), st)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := Lookup("infaas", Config{})
	if err != nil {
		t.Fatal(err)
	}
	pick := func() string {
		var d Decision
		pol.Select(s, &Request{Name: "two", LatencyMs: 100}, time.Time{}, &d)
		if d.Replica < 0 {
			t.Fatalf("no replica chosen: %+v", d)
		}
		return s.Replica(d.Replica).ID
	}
	if got := pick(); got != "ra" {
		t.Fatalf("idle: %s, want ra (first by ID)", got)
	}
	a.Store(3)
	if got := pick(); got != "rb" {
		t.Fatalf("ra has 3 in flight: %s, want rb", got)
	}
	b.Store(5)
	if got := pick(); got != "ra" {
		t.Fatalf("rb has 5 in flight, ra 3: %s, want ra", got)
	}
	// The explanation shows the same live queue.
	ex := pol.Explain(s, &Request{Name: "two", LatencyMs: 100}, time.Time{})
	if !strings.Contains(ex.String(), "queue") {
		t.Fatalf("explanation: %s", ex.String())
	}
}
