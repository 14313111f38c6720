package selection

import (
	"strings"
	"testing"
	"time"
)

func TestSelectInfaas(t *testing.T) {
	uc := "classification/mnist"
	full := func(st *State) { // no free memory anywhere
		for i := range st.Workers {
			st.Workers[i].FreeMemoryBytes = 0
		}
	}
	cases := []struct {
		name  string
		state State
		req   Request
		want  view
		check func(t *testing.T, s *Snapshot, d *Decision)
	}{
		{
			name:  "no requirements: cheapest loaded replica",
			state: mnistState(),
			req:   Request{Name: uc},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "loaded first: cheapest loaded replica that meets the target",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 10},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "tight target: small fast variant loaded off the critical path",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 0.3},
			want: view{Action: ServeAndLoad, Reason: ReasonLoading, Variant: cnnM2, Replica: "r-m2", Worker: "w1",
				Load: mlpS, LoadWorker: "w2"},
			check: func(t *testing.T, s *Snapshot, d *Decision) {
				if !d.Background() {
					t.Error("Background() = false for ServeAndLoad")
				}
			},
		},
		{
			name:  "high accuracy: the accurate variant",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 50, MinAccuracy: 99},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnL4, Replica: "r-l4", Worker: "w2"},
		},
		{
			name:  "cost ceiling: loaded variant too dear, cheaper accurate one loaded on the GPU",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 50, MinAccuracy: 99, MaxCostPer1k: 1e-4},
			want: view{Action: ServeAndLoad, Reason: ReasonLoading, Variant: cnnL4, Replica: "r-l4", Worker: "w2",
				Load: cnnLG, LoadWorker: "w3"},
		},
		{
			name:  "cold start: nothing loaded, cheapest variant that meets the target",
			state: mnistState().with(func(st *State) { st.Replicas = nil }),
			req:   Request{Name: uc, LatencyMs: 100},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Met: true, Variant: mlpS, Worker: "w2", Load: mlpS, LoadWorker: "w2"},
			check: func(t *testing.T, s *Snapshot, d *Decision) {
				if d.EstimateMs != 50.1 {
					t.Errorf("EstimateMs = %v, want load 50 + p99 0.1", d.EstimateMs)
				}
				if d.Background() {
					t.Error("Background() = true for LoadAndServe")
				}
			},
		},
		{
			name:  "cold start missing a strict target: refused, load kept in the background",
			state: mnistState().with(func(st *State) { st.Replicas = nil }),
			req:   Request{Name: uc, LatencyMs: 10, Strict: true},
			want:  view{Action: Refuse, Reason: ReasonNotReady, Load: mlpS, LoadWorker: "w2"},
			check: func(t *testing.T, s *Snapshot, d *Decision) {
				if !d.Background() {
					t.Error("Background() = false for a refusal with a load")
				}
			},
		},
		{
			name: "unhealthy replica skipped",
			state: mnistState().with(func(st *State) {
				st.replica("r-m2").Healthy = false
				r := replica("r-m2b", cnnM2, "w2")
				r.QueuedSamples = 5 // 2 ms of queue
				st.Replicas = append(st.Replicas, r)
			}),
			req:  Request{Kind: KindArchitecture, Name: "cnn-m", LatencyMs: 5},
			want: view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2b", Worker: "w2"},
		},
		{
			name:  "replica on an unhealthy worker: load elsewhere rather than use it",
			state: mnistState().with(func(st *State) { st.worker("w1").Healthy = false }),
			req:   Request{Kind: KindArchitecture, Name: "cnn-m", LatencyMs: 5},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: cnnM2, Worker: "w2", Load: cnnM2, LoadWorker: "w2"},
		},
		{
			name: "overloaded replica avoided while a usable one meets the target",
			state: mnistState().with(func(st *State) {
				st.replica("r-m2").Overloaded = true
				r := replica("r-m2b", cnnM2, "w2")
				r.QueuedSamples = 5
				st.Replicas = append(st.Replicas, r)
			}),
			req:  Request{Name: "cnn-m", LatencyMs: 5},
			want: view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2b", Worker: "w2"},
		},
		{
			name:  "interfered replica of the right variant: no second load, served as a stopgap",
			state: mnistState().with(func(st *State) { st.replica("r-m2").Interfered = true }),
			req:   Request{Name: "cnn-m", LatencyMs: 5},
			want:  view{Action: Serve, Reason: ReasonBusy, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name: "both replicas interfered: the less slowed one serves",
			state: mnistState().with(func(st *State) {
				st.replica("r-m2").Interfered = true
				st.replica("r-m2").Slowness = 8
				r := replica("r-m2b", cnnM2, "w2")
				r.Interfered, r.Slowness = true, 3
				st.Replicas = append(st.Replicas, r)
			}),
			req:  Request{Name: "cnn-m", LatencyMs: 50},
			want: view{Action: Serve, Reason: ReasonBusy, Met: true, Variant: cnnM2, Replica: "r-m2b", Worker: "w2"},
		},
		{
			name: "slowness: of two idle replicas the one running at its profile wins",
			state: mnistState().with(func(st *State) {
				st.replica("r-m2").Slowness = 1.5
				st.Replicas = append(st.Replicas, replica("r-m2b", cnnM2, "w2"))
			}),
			req:  Request{Name: uc, LatencyMs: 10},
			want: view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2b", Worker: "w2"},
		},
		{
			name: "queueing: the idle replica wins",
			state: mnistState().with(func(st *State) {
				st.replica("r-m2").QueuedSamples = 10 // 4 ms
				st.Replicas = append(st.Replicas, replica("r-m2b", cnnM2, "w2"))
			}),
			req:  Request{Name: uc, LatencyMs: 10},
			want: view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2b", Worker: "w2"},
		},
		{
			name: "busy: the cheapest feasible variant is loaded but queued; no second load",
			state: mnistState().with(func(st *State) {
				st.replica("r-m2").QueuedSamples = 25 // 10 ms
			}),
			req:  Request{Name: "cnn-m", LatencyMs: 5},
			want: view{Action: Serve, Reason: ReasonBusy, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name: "load in progress: no second load, closest replica serves",
			state: mnistState().with(func(st *State) {
				r := replica("r-mlp", mlpS, "w2")
				r.Loading, r.LoadStarted = true, t0.Add(-10*time.Millisecond) // 40 ms left
				st.Replicas = append(st.Replicas, r)
			}),
			req:  Request{Name: uc, LatencyMs: 0.3},
			want: view{Action: Serve, Reason: ReasonLoadInProgress, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name: "a loading replica that meets the target serves",
			state: mnistState().with(func(st *State) {
				r := replica("r-mlp", mlpS, "w2")
				r.Loading, r.LoadStarted = true, t0.Add(-10*time.Millisecond)
				st.Replicas = []Replica{r}
			}),
			req:  Request{Name: uc, LatencyMs: 100},
			want: view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: mlpS, Replica: "r-mlp", Worker: "w2"},
			check: func(t *testing.T, s *Snapshot, d *Decision) {
				if d.EstimateMs < 40 || d.EstimateMs > 40.2 {
					t.Errorf("EstimateMs = %v, want 40 ms of load left + 0.1", d.EstimateMs)
				}
			},
		},
		{
			name:  "best effort: nothing can meet the target, closest loaded replica",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 0.05},
			want:  view{Action: Serve, Reason: ReasonBestEffort, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "strict and unsatisfiable: refused without a load",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 0.05, Strict: true},
			want:  view{Action: Refuse, Reason: ReasonUnsatisfiable},
		},
		{
			name:  "strict and satisfiable once loaded: refused, load started",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 0.3, Strict: true},
			want:  view{Action: Refuse, Reason: ReasonNotReady, Load: mlpS, LoadWorker: "w2"},
		},
		{
			name:  "strict and met: served",
			state: mnistState(),
			req:   Request{Name: uc, LatencyMs: 10, Strict: true},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "best effort without a loaded replica: load the closest",
			state: mnistState().with(func(st *State) { st.Replicas = nil }),
			req:   Request{Name: uc, LatencyMs: 0.05},
			want:  view{Action: LoadAndServe, Reason: ReasonBestEffort, Variant: mlpS, Worker: "w2", Load: mlpS, LoadWorker: "w2"},
		},
		{
			name:  "batch too large",
			state: mnistState(),
			req:   Request{Name: uc, Batch: 128},
			want:  view{Action: Refuse, Reason: ReasonBatch},
			check: func(t *testing.T, s *Snapshot, d *Decision) {
				if msg := d.Message(s); !strings.Contains(msg, "batch 128 exceeds the largest max batch 64") {
					t.Errorf("Message = %q", msg)
				}
			},
		},
		{
			name:  "batch fits only the big variant: the loaded small one cannot bridge",
			state: mnistState(),
			req:   Request{Name: "cnn-m", Batch: 16, LatencyMs: 10},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: cnnM8, Worker: "w2", Load: cnnM8, LoadWorker: "w2"},
		},
		{
			name:  "accuracy unreachable",
			state: mnistState(),
			req:   Request{Name: uc, MinAccuracy: 99.5},
			want:  view{Action: Refuse, Reason: ReasonAccuracy},
			check: func(t *testing.T, s *Snapshot, d *Decision) {
				if d.Limit != 99.2 {
					t.Errorf("Limit = %v, want the best accuracy 99.2", d.Limit)
				}
			},
		},
		{
			name:  "unknown name",
			state: mnistState(),
			req:   Request{Name: "resnet-50"},
			want:  view{Action: Refuse, Reason: ReasonUnknown},
		},
		{
			name:  "name of another kind",
			state: mnistState(),
			req:   Request{Kind: KindArchitecture, Name: cnnM2},
			want:  view{Action: Refuse, Reason: ReasonUnknown},
		},
		{
			name:  "explicit variant, not loaded",
			state: mnistState(),
			req:   Request{Kind: KindVariant, Name: cnnM8},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Met: true, Variant: cnnM8, Worker: "w2", Load: cnnM8, LoadWorker: "w2"},
		},
		{
			name:  "explicit variant, loaded",
			state: mnistState(),
			req:   Request{Name: cnnM2},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "interpolated p99 at batch 4 meets the target",
			state: mnistState(),
			req:   Request{Name: "cnn-m", Batch: 4, LatencyMs: 2.5}, // cnn-m t2: 2.29 ms at batch 4
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "interpolated p99 at batch 4 misses the target: faster variant loaded",
			state: mnistState(),
			req:   Request{Name: "cnn-m", Batch: 4, LatencyMs: 2}, // cnn-m t8: 1.03 ms at batch 4
			want:  view{Action: ServeAndLoad, Reason: ReasonLoading, Variant: cnnM2, Replica: "r-m2", Worker: "w1", Load: cnnM8, LoadWorker: "w2"},
		},
		{
			name:  "worker lacks memory: placed on the other",
			state: mnistState().with(func(st *State) { st.worker("w2").FreeMemoryBytes = 10 << 20 }),
			req:   Request{Name: uc, LatencyMs: 0.3},
			want:  view{Action: ServeAndLoad, Reason: ReasonLoading, Variant: cnnM2, Replica: "r-m2", Worker: "w1", Load: mlpS, LoadWorker: "w1"},
		},
		{
			name:  "worker lacks cores: placed on the other",
			state: mnistState().with(func(st *State) { st.worker("w2").Cores = 4 }),
			req:   Request{Name: "cnn-m", Batch: 16},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Met: true, Variant: cnnM8, Worker: "w1", Load: cnnM8, LoadWorker: "w1"},
		},
		{
			name:  "no capacity: closest replica serves, scale-out signalled",
			state: mnistState().with(full),
			req:   Request{Name: uc, LatencyMs: 0.3},
			want:  view{Action: Serve, Reason: ReasonNoCapacity, Variant: cnnM2, Replica: "r-m2", Worker: "w1", Unplaced: mlpS},
		},
		{
			name: "cheapest fits no worker: next cheapest loaded, scale-out signalled",
			state: mnistState().with(func(st *State) {
				st.worker("w3").FreeMemoryBytes = 0 // the GPU variant fits nowhere
				st.Replicas = st.Replicas[:1]       // no cnn-l replica
			}),
			req: Request{Name: uc, LatencyMs: 50, MinAccuracy: 99},
			want: view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: cnnL4, Worker: "w2", Load: cnnL4, LoadWorker: "w2",
				Unplaced: cnnLG},
		},
		{
			name:  "no capacity and nothing loaded: refused",
			state: mnistState().with(func(st *State) { full(st); st.Replicas = nil }),
			req:   Request{Name: uc, LatencyMs: 0.3},
			want:  view{Action: Refuse, Reason: ReasonNoCapacity, Unplaced: mlpS},
		},
		{
			name: "only unhealthy replicas and no capacity: the unhealthy one, said so",
			state: mnistState().with(func(st *State) {
				full(st)
				st.worker("w1").Healthy = false
				st.Replicas = st.Replicas[:1]
			}),
			req:  Request{Name: uc, LatencyMs: 10},
			want: view{Action: Serve, Reason: ReasonUnhealthyOnly, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1", Unplaced: mlpS},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSnapshot(t, mnistCatalog(), tc.state)
			var d Decision
			Select(s, &tc.req, t0, &d)
			if got := viewOf(s, &d); got != tc.want {
				t.Errorf("Select:\n got  %+v\n want %+v\n%s", got, tc.want, Explain(s, &tc.req, t0))
			}
			ex := Explain(s, &tc.req, t0)
			if ex.Decision != d {
				t.Errorf("Explain disagrees:\n Select  %+v\n Explain %+v\n%s", d, ex.Decision, ex)
			}
			if tc.check != nil {
				tc.check(t, s, &d)
			}
			if msg := d.Message(s); msg == "" || ex.String() == "" {
				t.Error("empty message or explanation")
			}
		})
	}
}

func TestFixedPolicy(t *testing.T) {
	uc := "classification/mnist"
	cases := []struct {
		name  string
		fixed map[string]string
		req   Request
		want  view
	}{
		{
			name:  "serves only its variant, even with another loaded",
			fixed: map[string]string{"cnn-m": cnnM8},
			req:   Request{Name: "cnn-m", LatencyMs: 5},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: cnnM8, Worker: "w2", Load: cnnM8, LoadWorker: "w2"},
		},
		{
			name:  "its variant loaded",
			fixed: map[string]string{"cnn-m": cnnM2},
			req:   Request{Name: "cnn-m", LatencyMs: 5},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "use case: cheapest of the fixed variants that meets",
			fixed: map[string]string{"cnn-m": cnnM2, "cnn-l": cnnL4},
			req:   Request{Name: uc, LatencyMs: 10},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnM2, Replica: "r-m2", Worker: "w1"},
		},
		{
			name:  "use case: accuracy rules out one fixed variant",
			fixed: map[string]string{"cnn-m": cnnM2, "cnn-l": cnnLG},
			req:   Request{Name: uc, LatencyMs: 10, MinAccuracy: 99},
			want:  view{Action: LoadAndServe, Reason: ReasonColdStart, Variant: cnnLG, Worker: "w3", Load: cnnLG, LoadWorker: "w3"},
		},
		{
			name:  "architecture not configured",
			fixed: map[string]string{"cnn-m": cnnM2},
			req:   Request{Name: "mlp-s"},
			want:  view{Action: Refuse, Reason: ReasonNotConfigured},
		},
		{
			name:  "configured variant of another architecture ignored",
			fixed: map[string]string{"cnn-m": cnnL4},
			req:   Request{Name: "cnn-m"},
			want:  view{Action: Refuse, Reason: ReasonNotConfigured},
		},
		{
			name:  "explicit variant served as asked",
			fixed: map[string]string{"cnn-m": cnnM2},
			req:   Request{Name: cnnL4},
			want:  view{Action: Serve, Reason: ReasonLoaded, Met: true, Variant: cnnL4, Replica: "r-l4", Worker: "w2"},
		},
		{
			name:  "unknown name",
			fixed: map[string]string{"cnn-m": cnnM2},
			req:   Request{Name: "nope"},
			want:  view{Action: Refuse, Reason: ReasonUnknown},
		},
	}
	s := mustSnapshot(t, mnistCatalog(), mnistState())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Lookup("fixed", Config{Fixed: tc.fixed})
			if err != nil {
				t.Fatal(err)
			}
			var d Decision
			p.Select(s, &tc.req, t0, &d)
			if got := viewOf(s, &d); got != tc.want {
				t.Errorf("Select:\n got  %+v\n want %+v\n%s", got, tc.want, p.Explain(s, &tc.req, t0))
			}
			if ex := p.Explain(s, &tc.req, t0); ex.Decision != d || ex.Policy != "fixed" {
				t.Errorf("Explain disagrees:\n Select  %+v\n Explain %+v", d, ex.Decision)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	cases := []struct {
		name    string
		policy  string
		cfg     Config
		wantErr string
	}{
		{name: "infaas", policy: "infaas"},
		{name: "fixed", policy: "fixed", cfg: Config{Fixed: map[string]string{"a": "a.v"}}},
		{name: "fixed without its configuration", policy: "fixed", wantErr: "needs a variant per architecture"},
		{name: "unknown name lists the known ones", policy: "round-robin", wantErr: `unknown selection policy "round-robin" (known: fixed, infaas)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Lookup(tc.policy, tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Name() != tc.policy {
				t.Errorf("Name() = %q", p.Name())
			}
		})
	}
}

// TestFixedDefault: an architecture the fixed policy has no entry for is
// served by its cheapest fp32 variant, and only by it.
func TestFixedDefault(t *testing.T) {
	cat := mnistCatalog()
	for i := range cat.Variants {
		cat.Variants[i].Precision = "int8"
		if cat.Variants[i].Name == cnnM8 {
			cat.Variants[i].Precision = "fp32"
		}
	}
	s := mustSnapshot(t, cat, mnistState())
	p, err := Lookup("fixed", Config{FixedDefault: true})
	if err != nil {
		t.Fatal(err)
	}
	var d Decision
	req := Request{Name: "cnn-m"}
	p.Select(s, &req, t0, &d)
	if d.Variant < 0 || s.Variant(d.Variant).Name != cnnM8 {
		t.Fatalf("want the fp32 variant %s (not the loaded int8 %s), got %+v", cnnM8, cnnM2, viewOf(s, &d))
	}
	// No fp32 variant at all: not configured.
	req = Request{Name: "mlp-s"}
	p.Select(s, &req, t0, &d)
	if d.Action != Refuse || d.Reason != ReasonNotConfigured {
		t.Fatalf("want not-configured for an architecture without fp32 variants, got %+v", viewOf(s, &d))
	}
}
