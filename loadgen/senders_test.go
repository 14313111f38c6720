package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/infaas/infaas/api"
	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/controller"
)

// backend is a controller stand-in behind the real Open Inference Protocol
// front ends: the model's name says how it answers.
type backend struct {
	mu   sync.Mutex
	reqs map[string][]api.InferRequest
}

func (b *backend) Infer(ctx context.Context, req *api.InferRequest) (*api.InferResponse, error) {
	b.mu.Lock()
	if b.reqs == nil {
		b.reqs = map[string][]api.InferRequest{}
	}
	b.reqs[req.Model] = append(b.reqs[req.Model], *req)
	b.mu.Unlock()
	ok := &api.InferResponse{Parameters: map[string]any{"variant": req.Model + ".v1", "met": true}}
	switch req.Model {
	case "ok", "classification/mnist":
		return ok, nil
	case "overloaded":
		return nil, fmt.Errorf("%w: queue full", controller.ErrOverloaded)
	case "unsatisfiable":
		return nil, fmt.Errorf("%w: nothing meets 1 ms", controller.ErrUnsatisfiable)
	case "broken":
		return nil, errors.New("boom")
	case "slow", "stuck":
		wait := 300 * time.Millisecond
		if req.Model == "stuck" {
			wait = time.Minute
		}
		select {
		case <-time.After(wait):
			return ok, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("%w: %s", controller.ErrUnknownModel, req.Model)
}

func (b *backend) ModelMetadata(_ context.Context, name string) (api.ModelMetadata, error) {
	return api.ModelMetadata{
		Name:     name,
		Platform: "onnxruntime_onnx",
		Inputs:   []api.TensorMetadata{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 1, 2, 2}}},
		Outputs:  []api.TensorMetadata{{Name: "y", Datatype: "FP32", Shape: []int64{-1, 10}}},
	}, nil
}

func (b *backend) ModelReady(context.Context, string) (bool, error) { return true, nil }
func (b *backend) Ready(context.Context) bool                       { return true }

func (b *backend) requests(model string) []api.InferRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reqs[model]
}

// transports start the front ends over b and return a sender to each.
var transports = map[string]func(t *testing.T, b api.Backend) Sender{
	"http": func(t *testing.T, b api.Backend) Sender {
		mux := http.NewServeMux()
		api.RegisterInference(mux, b, 0)
		srv := httptest.NewServer(mux)
		s := NewHTTPSender(srv.URL, 64, 1)
		t.Cleanup(func() {
			s.Close()
			srv.Close()
		})
		return s
	},
	"grpc": func(t *testing.T, b api.Backend) Sender {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		pb.RegisterGRPCInferenceServiceServer(srv, api.NewInferenceServer(b))
		go func() { _ = srv.Serve(lis) }()
		s, err := NewGRPCSender(lis.Addr().String(), 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = s.Close()
			srv.Stop()
		})
		return s
	},
}

// TestSenders runs one suite against both transports: outcomes as the
// server's refusals and errors map to them, variants, violations against
// each request's own target, and the requirements the server received.
func TestSenders(t *testing.T) {
	for name, start := range transports {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := &backend{}
			sender := start(t, b)
			mix := Mix{
				{Weight: 1, Model: "ok", LatencyMs: 5000, MinAccuracy: 97, Batch: 3},
				{Weight: 1, Model: "classification/mnist", MaxCost: 0.25, Strict: true},
				{Weight: 1, Model: "overloaded"},
				{Weight: 1, Model: "unsatisfiable", LatencyMs: 1, Strict: true},
				{Weight: 1, Model: "broken"},
				{Weight: 1, Model: "slow", LatencyMs: 50},   // answered in 300 ms: a violation
				{Weight: 1, Model: "slow", LatencyMs: 5000}, // the same, within its target
				{Weight: 1, Model: "stuck", LatencyMs: 10},  // times out after 1 s
			}
			sum, _, err := Run(context.Background(), Config{
				Schedule: mustSchedule(t, "constant:40:1s"),
				Arrivals: Fixed,
				Seed:     3,
				Mix:      mix,
				Sender:   sender,
			})
			if err != nil {
				t.Fatal(err)
			}
			type want struct{ answered, refused, failed, violations int }
			wants := []want{
				{answered: -1}, {answered: -1}, {refused: -1}, {refused: -1}, {failed: -1},
				{answered: -1, violations: -1}, {answered: -1}, {failed: -1},
			}
			for i, st := range sum.Sets {
				w := wants[i]
				fill := func(n int) int {
					if n < 0 {
						return st.Sent
					}
					return n
				}
				got := want{st.Answered, st.Refused, st.Failed, st.Violations}
				if exp := (want{fill(w.answered), fill(w.refused), fill(w.failed), fill(w.violations)}); got != exp || st.Sent == 0 {
					t.Errorf("%s: sent %d, got %+v, want %+v", st.Label, st.Sent, got, exp)
				}
			}
			if sum.Sent != 40 || sum.Answered+sum.Refused+sum.Failed != 40 {
				t.Errorf("sent %d: answered %d, refused %d, failed %d", sum.Sent, sum.Answered, sum.Refused, sum.Failed)
			}
			if sum.Statuses["timeout"] != sum.Sets[7].Sent {
				t.Errorf("statuses %v: want the stuck requests as timeouts", sum.Statuses)
			}
			if sum.Variants["ok.v1"] != sum.Sets[0].Answered || sum.Variants["slow.v1"] != sum.Sets[5].Answered+sum.Sets[6].Answered {
				t.Errorf("variants %v", sum.Variants)
			}
			if sum.Violations != sum.Sets[5].Sent || sum.TightestTargetMs != 1 {
				t.Errorf("violations %d, tightest %g", sum.Violations, sum.TightestTargetMs)
			}

			reqs := b.requests("ok")
			if len(reqs) == 0 {
				t.Fatal("the server saw no request for ok")
			}
			r := reqs[0]
			if r.Requirements != (api.Requirements{LatencyMs: 5000, MinAccuracy: 97}) {
				t.Errorf("requirements received: %+v", r.Requirements)
			}
			if len(r.Inputs) != 1 || r.Inputs[0].Name != "x" || fmt.Sprint(r.Inputs[0].Shape) != "[3 1 2 2]" || len(r.Inputs[0].Data) != 3*4*4 {
				t.Errorf("inputs received: %+v", r.Inputs)
			}
			if reqs := b.requests("classification/mnist"); len(reqs) == 0 ||
				reqs[0].Requirements != (api.Requirements{MaxCost: 0.25, Strict: true}) {
				t.Errorf("use case requests: %+v", reqs)
			}
		})
	}
}

// TestHTTPStatuses classifies what the infaas front end never answers but
// a proxy in front of it may: 429, bare 5xx and bodies that are not JSON.
func TestHTTPStatuses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/models/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"name": "m", "inputs": [{"name": "x", "datatype": "INT64", "shape": [-1, 3]}]}`)
	})
	mux.HandleFunc("POST /v2/models/{name}/infer", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("name") {
		case "limited":
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case "gateway":
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		case "echo":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"model_name": "echo.v7", "outputs": []}`)
		default:
			js := `{"parameters": {"variant": "binary.v", "queue_ms": 1.5, "compute_ms": 2.25, "batch_size": 4, "replica": "r1", "worker": "w2"}}`
			w.Header().Set(headerJSONLength, strconv.Itoa(len(js)))
			fmt.Fprint(w, js+"\x00\x01raw")
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s := NewHTTPSender(srv.URL, 4, 1)
	defer s.Close()
	ctx := context.Background()
	for _, tt := range []struct {
		model   string
		result  Result
		status  string
		variant string
		served  Timing
	}{
		{"limited", Refused, "429", "", Timing{}},
		{"gateway", Failed, "502", "", Timing{}},
		{"echo", Answered, "200", "echo.v7", Timing{}},
		{"binary", Answered, "200", "binary.v", Timing{Known: true, QueueMs: 1.5, ComputeMs: 2.25, BatchSize: 4, Replica: "r1", Worker: "w2"}},
	} {
		p, err := s.Prepare(ctx, RequirementSet{Weight: 1, Model: tt.model})
		if err != nil {
			t.Fatal(err)
		}
		o := s.Send(ctx, p)
		if o.Result != tt.result || o.Status != tt.status || o.Variant != tt.variant || o.Served != tt.served {
			t.Errorf("%s: %+v, want %v %s %q %+v", tt.model, o, tt.result, tt.status, tt.variant, tt.served)
		}
	}

	// Nothing listens: a failure, not a refusal.
	srv.Close()
	p, err := s.Prepare(ctx, RequirementSet{Weight: 1, Model: "m"})
	if err == nil {
		t.Fatalf("Prepare against a closed server: %+v", p)
	}
}
