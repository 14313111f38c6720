package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/validation"
)

// mnist is the zoo's MNIST validation set in raw 0–255 pixels.
func mnist(t testing.TB) *validation.Set { return zootest.Validation(t, "mnist") }

func samples(s *validation.Set, from, n int) client.InferInput {
	vals := make([]float32, 0, n*784)
	for _, v := range s.Inputs[from*784 : (from+n)*784] {
		vals = append(vals, float32(v))
	}
	return client.InferInput{Name: "input", Shape: []int64{int64(n), 1, 28, 28}, Datatype: "FP32", Data: vals}
}

func argmaxRows(data []float64, classes int) []int {
	var out []int
	for i := 0; i+classes <= len(data); i += classes {
		best := 0
		for c := 1; c < classes; c++ {
			if data[i+c] > data[i+best] {
				best = c
			}
		}
		out = append(out, best)
	}
	return out
}

func grpcClient(t testing.TB, s *server) pb.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewGRPCInferenceServiceClient(conn)
}

func rawFP32(s *validation.Set, from, n int) []byte {
	out := make([]byte, 0, n*784*4)
	for _, v := range s.Inputs[from*784 : (from+n)*784] {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v)))
	}
	return out
}

// TestQueryThreeWays: a variant by name, an architecture with a latency
// target, and a use case with requirements, over HTTP and gRPC; each
// answer classifies real MNIST digits and says who served it.
func TestQueryThreeWays(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerZoo(t, "mnist-mlp-s")
	s.registerZoo(t, "mnist-cnn-s")
	c := ctx(t)
	set := mnist(t)
	vs, err := s.c.Variants(c, "mnist-cnn-s")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].MaxBatch > vs[j].MaxBatch })
	// Which architecture is more accurate is measured at registration; the
	// expectations follow the measurements.
	accOf := map[string]float64{}
	for _, n := range []string{"mnist-mlp-s", "mnist-cnn-s"} {
		a, err := s.c.Architecture(c, n)
		if err != nil {
			t.Fatal(err)
		}
		accOf[n] = a.Accuracy
	}
	accurate := "mnist-cnn-s"
	if accOf["mnist-mlp-s"] > accOf["mnist-cnn-s"] {
		accurate = "mnist-mlp-s"
	}
	asks := []struct {
		name, model string
		params      map[string]any
		wantArch    string
	}{
		{"variant", vs[0].Name, nil, "mnist-cnn-s"},
		{"architecture", "mnist-mlp-s", map[string]any{"latency_ms": 50.0}, "mnist-mlp-s"},
		{"use case", "classification.mnist", map[string]any{"latency_ms": 50.0, "min_accuracy": accOf[accurate]}, accurate},
	}
	for _, a := range asks {
		t.Run(a.name+"/http", func(t *testing.T) {
			res, err := s.c.Infer(c, a.model, samples(set, 0, 8), a.params)
			if err != nil {
				t.Fatal(err)
			}
			if res.Parameters["architecture"] != a.wantArch || res.Parameters["variant"] == "" || res.Parameters["worker"] == "" {
				t.Fatalf("served by %v (%v), want architecture %s", res.Parameters["variant"], res.Parameters["architecture"], a.wantArch)
			}
			got := argmaxRows(res.Outputs[0].Data, 10)
			if correct := countEqual(got, set.Labels[:8]); correct < 7 {
				t.Fatalf("classes %v, labels %v", got, set.Labels[:8])
			}
		})
		t.Run(a.name+"/grpc", func(t *testing.T) {
			req := &pb.ModelInferRequest{ModelName: a.model, Inputs: []*pb.ModelInferRequest_InferInputTensor{
				{Name: "input", Datatype: "FP32", Shape: []int64{8, 1, 28, 28}}}, RawInputContents: [][]byte{rawFP32(set, 0, 8)},
				Parameters: map[string]*pb.InferParameter{}}
			for k, v := range a.params {
				req.Parameters[k] = &pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: v.(float64)}}
			}
			res, err := grpcClient(t, s).ModelInfer(c, req)
			if err != nil {
				t.Fatal(err)
			}
			if arch := res.Parameters["architecture"].GetStringParam(); arch != a.wantArch {
				t.Fatalf("served by architecture %q, want %s", arch, a.wantArch)
			}
			if len(res.RawOutputContents) != 1 || len(res.RawOutputContents[0]) != 8*10*4 {
				t.Fatalf("raw outputs: %d buffers", len(res.RawOutputContents))
			}
			var rows []float64
			for i := 0; i < 80; i++ {
				rows = append(rows, float64(math.Float32frombits(binary.LittleEndian.Uint32(res.RawOutputContents[0][4*i:]))))
			}
			if correct := countEqual(argmaxRows(rows, 10), set.Labels[:8]); correct < 7 {
				t.Fatalf("only %d of 8 correct", correct)
			}
		})
	}
	// A tight target goes to a variant whose profile meets it whenever one
	// does. Whether the answer is back within 1 ms is up to the machine (a
	// busy one misses it; BenchmarkTightTarget in ./worker measures the
	// worker's share); what must hold is the decision, that the answer is
	// right, and that "met" tells the truth about the latency observed. A
	// worker too slow for the deadline at that moment may refuse with "try
	// later" instead, so several are sent.
	const tight = 1.0
	fastest := math.Inf(1) // the fastest profile at batch 1 of any variant
	for _, n := range []string{"mnist-mlp-s", "mnist-cnn-s"} {
		all, err := s.c.Variants(c, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range all {
			fastest = min(fastest, v.Profile.P99At(1))
		}
	}
	answered, correct := 0, 0
	for i := range 10 {
		fr, err := s.c.Infer(c, "classification.mnist", samples(set, i, 1), map[string]any{"latency_ms": tight})
		if err != nil {
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable || !strings.Contains(ce.Message, "try later") {
				t.Fatalf("a %.0f ms target: %v; want an answer or 503 try later", tight, err)
			}
			t.Logf("a %.0f ms target refused: %v", tight, err)
			continue
		}
		answered++
		p := fr.Parameters
		fv, err := s.c.Variant(c, p["variant"].(string))
		if err != nil {
			t.Fatal(err)
		}
		est, lat := p["estimate_ms"].(float64), p["latency_ms"].(float64)
		queue, compute := p["queue_ms"].(float64), p["compute_ms"].(float64)
		t.Logf("a %.0f ms target: %s (profiled p99 %.3f ms, estimate %.3f ms), %s, latency %.3f ms (queue %.3f, compute %.3f), met %v",
			tight, fv.Name, fv.Profile.P99At(1), est, p["action"], lat, queue, compute, p["met"])
		// The estimate adds the replica's queue as the last state report
		// saw it, which may be a request that has since finished; the
		// profile is what decides the variant.
		if fastest <= tight && fv.Profile.P99At(1) > tight {
			t.Errorf("a %.0f ms target went to %s (profiled p99 %.3f ms) although a variant profiles at %.3f ms",
				tight, fv.Name, fv.Profile.P99At(1), fastest)
		}
		// met is the estimate meeting the target and the latency observed
		// meeting it (both are rounded to the microsecond).
		edge := math.Abs(lat-tight) <= 0.001 || math.Abs(est-tight) <= 0.001
		if wantMet := est <= tight && lat <= tight; p["met"] != wantMet && !edge {
			t.Errorf("met %v with estimate %.3f ms and latency %.3f ms for a %.0f ms target", p["met"], est, lat, tight)
		}
		if queue < 0 || compute <= 0 || queue+compute > lat+0.002 {
			t.Errorf("the worker's queue %.3f + compute %.3f ms do not fit in the latency %.3f ms", queue, compute, lat)
		}
		got := argmaxRows(fr.Outputs[0].Data, 10)
		if len(got) != 1 {
			t.Fatalf("one image answered with %d rows of scores", len(got))
		}
		correct += countEqual(got, set.Labels[i:i+1])
	}
	if answered == 0 {
		t.Fatalf("ten queries with a %.0f ms target were all refused", tight)
	}
	if correct < answered-2 {
		t.Errorf("only %d of %d images answered under a %.0f ms target classified right", correct, answered, tight)
	}
	ar, err := s.c.Infer(c, "classification.mnist", samples(set, 0, 1), map[string]any{"latency_ms": 100.0, "min_accuracy": accOf[accurate]})
	if err != nil {
		t.Fatal(err)
	}
	if ar.Parameters["architecture"] != accurate {
		t.Fatalf("min accuracy %.2f%% chose %v, want %s", accOf[accurate], ar.Parameters["variant"], accurate)
	}
	// Decisions are explained on request and logged.
	ex, err := s.c.Infer(c, "classification.mnist", samples(set, 0, 1), map[string]any{"latency_ms": 10.0, "explain": true})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := ex.Parameters["explanation"].(string); !strings.Contains(e, "candidates") {
		t.Fatalf("explanation: %q", e)
	}
	if ds, err := s.c.Decisions(c); err != nil || len(ds) < 5 {
		t.Fatalf("decision log: %d entries, %v", len(ds), err)
	}
	// Prometheus sees the queries.
	body := scrape(t, s)
	for _, want := range []string{`infaas_inference_request_success{variant="` + vs[0].Name + `"`, "infaas_decisions_total{action=",
		"infaas_request_duration_ms_bucket", `infaas_worker_memory_reserved_bytes{worker="` + fmt.Sprint(ar.Parameters["worker"]) + `"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func countEqual(a, b []int) int {
	n := 0
	for i := range a {
		if i < len(b) && a[i] == b[i] {
			n++
		}
	}
	return n
}

// TestMnist8AccuracyThroughTheStack sends all 1000 validation digits to
// mnist-8 over gRPC (its batch is fixed at 1) and checks the accuracy
// matches its profile within half a point.
func TestMnist8AccuracyThroughTheStack(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerZoo(t, "mnist-8")
	c := ctx(t)
	arch, err := s.c.Architecture(c, "mnist-8")
	if err != nil {
		t.Fatal(err)
	}
	set := mnist(t)
	gc := grpcClient(t, s)
	var mu sync.Mutex
	correct := 0
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < set.N; i += 4 {
				res, err := gc.ModelInfer(c, &pb.ModelInferRequest{ModelName: "mnist-8", Inputs: []*pb.ModelInferRequest_InferInputTensor{
					{Name: "Input3", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{rawFP32(set, i, 1)}})
				if err != nil {
					errs <- err
					return
				}
				var row []float64
				for k := 0; k < 10; k++ {
					row = append(row, float64(math.Float32frombits(binary.LittleEndian.Uint32(res.RawOutputContents[0][4*k:]))))
				}
				if argmaxRows(row, 10)[0] == set.Labels[i] {
					mu.Lock()
					correct++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := 100 * float64(correct) / float64(set.N)
	if math.Abs(got-arch.Accuracy) > 0.5 {
		t.Fatalf("accuracy through the stack %.2f%%, profile says %.2f%%", got, arch.Accuracy)
	}
	t.Logf("mnist-8 through the stack: %.2f%% (profile %.2f%%)", got, arch.Accuracy)
}

// TestQueryBadInput: every malformed query gets a precise status and message.
func TestQueryBadInput(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerZoo(t, "mnist-mlp-s")
	set := mnist(t)
	one := samples(set, 0, 1)
	post := func(model, body string) (int, string) {
		resp, err := http.Post("http://"+s.addr+"/v2/models/"+model+"/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tensor := func(shape []int64, dt string, n int, params string) string {
		data := make([]string, n)
		for i := range data {
			data[i] = "1"
		}
		sh, _ := json.Marshal(shape)
		p := ""
		if params != "" {
			p = `"parameters": ` + params + `,`
		}
		return fmt.Sprintf(`{%s "inputs": [{"name": "input", "shape": %s, "datatype": "%s", "data": [%s]}]}`, p, sh, dt, strings.Join(data, ","))
	}
	big := bytes.Repeat([]byte("1,"), 40<<20)
	cases := []struct {
		name, model, body string
		status            int
		msg               string
	}{
		{"unknown model", "no-such-model", tensor([]int64{1, 1, 28, 28}, "FP32", 784, ""), 404, "no variant, architecture or use case"},
		{"malformed json", "mnist-mlp-s", `{"inputs": [`, 400, ""},
		{"wrong datatype", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "INT64", 784, ""), 400, "FP32 [batch, 1, 28, 28]"},
		{"wrong shape", "mnist-mlp-s", tensor([]int64{1, 1, 28, 27}, "FP32", 756, ""), 400, "has shape"},
		{"data length vs shape", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 700, ""), 400, ""},
		{"empty batch", "mnist-mlp-s", tensor([]int64{0, 1, 28, 28}, "FP32", 0, ""), 400, ""},
		{"batch above every max batch", "mnist-mlp-s", tensor([]int64{33, 1, 28, 28}, "FP32", 33*784, ""), 422, "batch"},
		{"negative latency", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"latency_ms": -5}`), 400, "latency_ms"},
		{"absurd latency", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"latency_ms": 1e12}`), 400, "latency_ms"},
		{"accuracy above 100", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"min_accuracy": 101}`), 400, "min_accuracy"},
		{"unreachable accuracy, strict", "classification.mnist", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"min_accuracy": 99.9, "strict": true}`), 422, "accuracy"},
		{"oversized body", "mnist-mlp-s", `{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": [` + string(big) + `1]}]}`, 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.model, tc.body)
			if code != tc.status || !strings.Contains(body, tc.msg) || !strings.Contains(body, `"error"`) {
				t.Fatalf("got %d %s; want %d with %q", code, body, tc.status, tc.msg)
			}
		})
	}
	// The server is still serving after all that.
	if _, err := s.c.Infer(ctx(t), "mnist-mlp-s", one, nil); err != nil {
		t.Fatalf("server broken after bad input: %v", err)
	}
	// gRPC codes match.
	gc := grpcClient(t, s)
	_, err := gc.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "nope", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{rawFP32(set, 0, 1)}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model over gRPC: %v", err)
	}
	_, err = gc.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "mnist-mlp-s", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{rawFP32(set, 0, 1)[:100]}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("short raw contents over gRPC: %v", err)
	}
}

// overload is one variant of mnist-cnn-m on a server, driven over gRPC by
// many concurrent clients sending one image each.
type overload struct {
	s   *server
	gc  pb.GRPCInferenceServiceClient
	v   catalog.Variant
	set *validation.Set
}

// startOverload registers mnist-cnn-m and loads its variant with the
// largest max batch.
func startOverload(t testing.TB) *overload {
	s := startServer(t, t.TempDir())
	s.registerZoo(t, "mnist-cnn-m")
	c := ctx(t)
	vs, err := s.c.Variants(c, "mnist-cnn-m")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].MaxBatch > vs[j].MaxBatch })
	o := &overload{s: s, gc: grpcClient(t, s), v: vs[0], set: mnist(t)}
	if _, err := o.send(c, 0, 0); err != nil { // load it
		t.Fatal(err)
	}
	return o
}

// send asks for image i with a latency target in ms (0: none).
func (o *overload) send(c context.Context, i int, target float64) (*pb.ModelInferResponse, error) {
	req := &pb.ModelInferRequest{ModelName: o.v.Name,
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}},
		RawInputContents: [][]byte{rawFP32(o.set, i%o.set.N, 1)}}
	if target > 0 {
		req.Parameters = map[string]*pb.InferParameter{"latency_ms": {ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: target}}}
	}
	return o.gc.ModelInfer(c, req)
}

// overloadRun is what a drive saw.
type overloadRun struct {
	sent, answered int
	refused        int     // 503 "try later": admission control or a request shed late
	unavailable    int     // other 503s ("try again": a worker not ready)
	failures       []error // anything else
	correct        int     // answers whose class is the image's label
	malformed      int     // answers without exactly ten FP32 scores
	metLate        int     // answers reported met with a latency above the target
	overlong       int     // answers whose worker time exceeds their latency
	maxBatch       int64
	latency        []float64 // latency_ms of the answers, sorted
	inWorker       []float64 // queue_ms + compute_ms of the answers, sorted
}

// drive runs clients goroutines sending each requests with target, images
// in turn, and classifies every outcome.
func (o *overload) drive(c context.Context, target float64, clients, each int) overloadRun {
	var mu sync.Mutex
	var r overloadRun
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for i := range each {
				img := (w*each + i) % o.set.N
				res, err := o.send(c, img, target)
				mu.Lock()
				r.sent++
				switch {
				case err == nil:
					r.answered++
					p := res.Parameters
					lat := p["latency_ms"].GetDoubleParam()
					r.latency = append(r.latency, lat)
					r.maxBatch = max(r.maxBatch, p["batch_size"].GetInt64Param())
					if p["met"].GetBoolParam() && lat > target+0.001 {
						r.metLate++
					}
					wt := p["queue_ms"].GetDoubleParam() + p["compute_ms"].GetDoubleParam()
					r.inWorker = append(r.inWorker, wt)
					if wt > lat+0.002 {
						r.overlong++
					}
					if len(res.RawOutputContents) != 1 || len(res.RawOutputContents[0]) != 10*4 {
						r.malformed++
						break
					}
					var row []float64
					for k := range 10 {
						row = append(row, float64(math.Float32frombits(binary.LittleEndian.Uint32(res.RawOutputContents[0][4*k:]))))
					}
					if argmaxRows(row, 10)[0] == o.set.Labels[img] {
						r.correct++
					}
				case status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "try later"):
					r.refused++
				case status.Code(err) == codes.Unavailable:
					r.unavailable++
				default:
					r.failures = append(r.failures, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Float64s(r.latency)
	sort.Float64s(r.inWorker)
	return r
}

// pct is the p-quantile of sorted values (0 when there are none).
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return v[max(0, int(math.Ceil(p*float64(len(v))))-1)]
}

// check asserts what holds under any load: every request is answered or
// refused with a 503, answers are well formed and as accurate as the
// variant, "met" never claims a latency above the target, and the
// worker's share of an answer's time fits in it.
func (r overloadRun) check(t *testing.T, what string, accuracy float64) {
	t.Helper()
	for i, err := range r.failures {
		if i == 5 {
			t.Errorf("%s: … %d failures in all", what, len(r.failures))
			break
		}
		t.Errorf("%s: neither an answer nor 503: %v", what, err)
	}
	if r.answered+r.refused+r.unavailable+len(r.failures) != r.sent {
		t.Errorf("%s: %d sent, %d answered, %d refused, %d unavailable, %d failed", what, r.sent, r.answered, r.refused, r.unavailable, len(r.failures))
	}
	if r.malformed > 0 {
		t.Errorf("%s: %d answers without ten scores", what, r.malformed)
	}
	// Batching must not mix samples up: accuracy holds (within 3 points of
	// the variant's, on a few hundred images or more).
	if r.answered >= 200 {
		if acc := 100 * float64(r.correct) / float64(r.answered); acc < accuracy-3 {
			t.Errorf("%s: %.1f%% of %d answers right, the variant's accuracy is %.1f%%", what, acc, r.answered, accuracy)
		}
	}
	if r.metLate > 0 {
		t.Errorf("%s: %d answers said met with a latency above the target", what, r.metLate)
	}
	if r.overlong > 0 {
		t.Errorf("%s: %d answers report more queue and compute time than latency", what, r.overlong)
	}
}

// TestOverloadBatchesAndRefuses drives one variant with more concurrent
// requests than it answers one at a time. With a target it can hold,
// requests batch; with one it cannot hold for that many clients, the
// excess is refused with "try later" rather than queued. Every request is
// answered correctly or refused with a 503, busy machine or not; how fast
// the admitted requests are is BenchmarkOverload's business.
func TestOverloadBatchesAndRefuses(t *testing.T) {
	o := startOverload(t)
	c := ctx(t)
	v := o.v

	// A target the replica can hold: batches larger than one form.
	const target = 20.0
	r := o.drive(c, target, 48, 100)
	t.Logf("%s, 48 clients, target %.0f ms: %d answered (p50 %.3f, p99 %.3f ms in infaas, of which in the worker p50 %.3f, p99 %.3f ms), largest batch %d, %d refused, %d unavailable",
		v.Name, target, r.answered, pct(r.latency, 0.5), pct(r.latency, 0.99), pct(r.inWorker, 0.5), pct(r.inWorker, 0.99), r.maxBatch, r.refused, r.unavailable)
	r.check(t, "target 20 ms", v.Accuracy)
	switch {
	case v.MaxBatch > 1 && r.maxBatch < 2:
		t.Errorf("no batch larger than 1 formed under 48 concurrent clients (max batch %d)", v.MaxBatch)
	case r.maxBatch > int64(v.MaxBatch):
		t.Errorf("a batch of %d formed on a variant of max batch %d", r.maxBatch, v.MaxBatch)
	case v.MaxBatch == 1:
		// Pruning on a busy machine can keep only batch-1 variants (their
		// measured throughput was as good); batching is then not tested
		// here but in the worker's own tests.
		t.Logf("registration kept only max batch 1 variants; batching not exercised")
	}
	if r.answered == 0 {
		t.Errorf("nothing answered under a %.0f ms target", target)
	}

	// A target it cannot hold for 64 clients at once: below what 64
	// samples take at the profiled throughput, and twice a full batch's
	// p99 at most. The excess is refused, and what is admitted is served.
	tight := v.Profile.P99At(v.MaxBatch) * 2
	if thr := v.Profile.ThroughputQPS; thr > 0 {
		tight = min(tight, 0.5*64/thr*1000)
	}
	tight = max(tight, v.Profile.P99At(1)) // the worker enforces a deadline only a variant can meet
	r = o.drive(c, tight, 64, 50)
	t.Logf("target %.3f ms: %d answered (p50 %.3f, p99 %.3f ms; in the worker p50 %.3f, p99 %.3f ms), %d refused with try later, %d unavailable",
		tight, r.answered, pct(r.latency, 0.5), pct(r.latency, 0.99), pct(r.inWorker, 0.5), pct(r.inWorker, 0.99), r.refused, r.unavailable)
	r.check(t, fmt.Sprintf("target %.3f ms", tight), v.Accuracy)
	if r.refused == 0 {
		t.Errorf("nothing refused under %d concurrent requests with a %.3f ms target", 64, tight)
	}
	if r.answered == 0 {
		t.Errorf("everything refused with a %.3f ms target: admission should take what the replica can serve", tight)
	}
}

// BenchmarkOverload: the latency of the requests admitted under overload
// (48 concurrent gRPC clients, one image each, a 20 ms target, the largest
// max batch of mnist-cnn-m). Admission control should keep the p99 of the
// admitted requests within the target on an otherwise idle machine.
//
//	go test -run '^$' -bench BenchmarkOverload -benchtime 4800x ./e2e
func BenchmarkOverload(b *testing.B) {
	o := startOverload(b)
	c := ctx(b)
	const target, clients = 20.0, 48
	each := max(1, b.N/clients)
	b.ResetTimer()
	start := time.Now()
	r := o.drive(c, target, clients, each)
	elapsed := time.Since(start)
	b.StopTimer()
	if len(r.failures) > 0 {
		b.Fatalf("%d failures, the first: %v", len(r.failures), r.failures[0])
	}
	b.ReportMetric(pct(r.latency, 0.5), "p50-ms")
	b.ReportMetric(pct(r.latency, 0.99), "p99-ms")
	b.ReportMetric(pct(r.latency, 0.99)/target, "p99/target")
	b.ReportMetric(pct(r.inWorker, 0.99), "worker-p99-ms")
	b.ReportMetric(1000*float64(r.refused+r.unavailable)/float64(r.sent), "refused/1k")
	b.ReportMetric(float64(r.maxBatch), "largest-batch")
	b.ReportMetric(float64(r.answered)/elapsed.Seconds(), "answers/s")
}
