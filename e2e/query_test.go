package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/infaas/infaas/api/inferencepb"
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
	return client.InferInput{Name: "pixels", Shape: []int64{int64(n), 1, 28, 28}, Datatype: "FP32", Data: vals}
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
				{Name: "pixels", Datatype: "FP32", Shape: []int64{8, 1, 28, 28}}}, RawInputContents: [][]byte{rawFP32(set, 0, 8)},
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
	// A tight target is met by a variant whose profile meets it; the highest
	// accuracy goes to the most accurate architecture.
	fr, err := s.c.Infer(c, "classification.mnist", samples(set, 0, 1), map[string]any{"latency_ms": 1.0})
	if err != nil {
		t.Fatal(err)
	}
	fv, err := s.c.Variant(c, fr.Parameters["variant"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if p := fv.Profile.P99At(1); p > 1.0 || fr.Parameters["met"] != true {
		t.Fatalf("a 1 ms target was served by %s (profiled p99 %.3f ms), met %v", fv.Name, p, fr.Parameters["met"])
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
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`infaas_inference_request_success{variant="` + vs[0].Name + `"}`, "infaas_decisions_total{action=",
		"infaas_request_duration_ms_bucket", `infaas_worker_memory_reserved_bytes{worker="local"}`} {
		if !strings.Contains(string(body), want) {
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
		return fmt.Sprintf(`{%s "inputs": [{"name": "x", "shape": %s, "datatype": "%s", "data": [%s]}]}`, p, sh, dt, strings.Join(data, ","))
	}
	big := bytes.Repeat([]byte("1,"), 40<<20)
	cases := []struct {
		name, model, body string
		status            int
		msg               string
	}{
		{"unknown model", "no-such-model", tensor([]int64{1, 1, 28, 28}, "FP32", 784, ""), 404, "no variant, architecture or use case"},
		{"malformed json", "mnist-mlp-s", `{"inputs": [`, 400, ""},
		{"wrong datatype", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "INT64", 784, ""), 400, "takes FP32"},
		{"wrong shape", "mnist-mlp-s", tensor([]int64{1, 1, 28, 27}, "FP32", 756, ""), 400, "has shape"},
		{"data length vs shape", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 700, ""), 400, ""},
		{"empty batch", "mnist-mlp-s", tensor([]int64{0, 1, 28, 28}, "FP32", 0, ""), 400, ""},
		{"batch above every max batch", "mnist-mlp-s", tensor([]int64{33, 1, 28, 28}, "FP32", 33*784, ""), 422, "batch"},
		{"negative latency", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"latency_ms": -5}`), 400, "latency_ms"},
		{"absurd latency", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"latency_ms": 1e12}`), 400, "latency_ms"},
		{"accuracy above 100", "mnist-mlp-s", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"min_accuracy": 101}`), 400, "min_accuracy"},
		{"unreachable accuracy, strict", "classification.mnist", tensor([]int64{1, 1, 28, 28}, "FP32", 784, `{"min_accuracy": 99.9, "strict": true}`), 422, "accuracy"},
		{"oversized body", "mnist-mlp-s", `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [` + string(big) + `1]}]}`, 413, ""},
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
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{rawFP32(set, 0, 1)}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model over gRPC: %v", err)
	}
	_, err = gc.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "mnist-mlp-s", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{rawFP32(set, 0, 1)[:100]}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("short raw contents over gRPC: %v", err)
	}
}

// TestOverloadBatchesAndRefuses drives one variant with more concurrent
// requests than it answers one at a time: requests are batched and the
// admitted ones meet their target at the p99; with a target the replica
// cannot hold under that load, the excess is refused with "try later"
// rather than queued.
func TestOverloadBatchesAndRefuses(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerZoo(t, "mnist-cnn-m")
	c := ctx(t)
	vs, err := s.c.Variants(c, "mnist-cnn-m")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].MaxBatch > vs[j].MaxBatch })
	v := vs[0] // the largest max batch
	set := mnist(t)
	gc := grpcClient(t, s)
	send := func(i int, target float64) (*pb.ModelInferResponse, error) {
		return gc.ModelInfer(c, &pb.ModelInferRequest{ModelName: v.Name,
			Parameters:       map[string]*pb.InferParameter{"latency_ms": {ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: target}}},
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}},
			RawInputContents: [][]byte{rawFP32(set, i%set.N, 1)}})
	}
	if _, err := send(0, 1000); err != nil { // load it
		t.Fatal(err)
	}
	drive := func(target float64, clients, each int) (lat []float64, maxBatch int64, refused int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := 0; w < clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					res, err := send(w*each+i, target)
					mu.Lock()
					switch {
					case err == nil:
						lat = append(lat, res.Parameters["latency_ms"].GetDoubleParam())
						maxBatch = max(maxBatch, res.Parameters["batch_size"].GetInt64Param())
					case status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "try later"):
						refused++
					default:
						t.Errorf("unexpected error: %v", err)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		sort.Float64s(lat)
		return lat, maxBatch, refused
	}
	pct := func(v []float64, p float64) float64 { return v[int(math.Ceil(p*float64(len(v))))-1] }

	// A target the replica can hold: batches form, the p99 holds.
	const target = 20.0
	lat, maxBatch, refused := drive(target, 48, 100)
	t.Logf("%s, 48 clients, target %.0f ms: %d answered, p50 %.3f p99 %.3f ms in infaas, largest batch %d, %d refused",
		v.Name, target, len(lat), pct(lat, 0.5), pct(lat, 0.99), maxBatch, refused)
	if maxBatch < 2 {
		t.Errorf("no batch larger than 1 formed under load")
	}
	if p99 := pct(lat, 0.99); p99 > target {
		t.Errorf("p99 of admitted requests %.3f ms exceeds their %.0f ms target", p99, target)
	}
	// A target it cannot hold for 64 clients at once: the excess is refused.
	tight := v.Profile.P99At(v.MaxBatch) * 2
	lat, _, refused = drive(tight, 64, 50)
	t.Logf("target %.3f ms: %d answered, %d refused with try later", tight, len(lat), refused)
	if refused == 0 {
		t.Errorf("nothing refused under %d concurrent requests with a %.3f ms target", 64, tight)
	}
}
