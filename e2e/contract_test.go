package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/zoo/contracts"
)

// contractCase is one query to a contract-zoo model: its inputs, in the
// model's order, as whole tensors.
type contractCase struct {
	model  string
	inputs []inference.Tensor
}

// tensorOf builds a deterministic tensor: FP32 values from a sine, INT64
// values from ints (nil: 0, 1, 2, ... modulo mod).
func tensorOf(name, datatype string, shape []int64, ints []int64, mod int64) inference.Tensor {
	n := int(catalog.Elements(shape))
	t := inference.Tensor{Name: name, Datatype: datatype, Shape: shape}
	for i := range n {
		switch datatype {
		case "FP32":
			t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(float32(math.Sin(float64(i)*0.37))))
		case "INT64":
			var v int64
			if ints != nil {
				v = ints[i]
			} else {
				v = int64(i) % mod
			}
			t.Data = binary.LittleEndian.AppendUint64(t.Data, uint64(v))
		}
	}
	return t
}

func contractCases() []contractCase {
	return []contractCase{
		{"tabular-two-inputs", []inference.Tensor{
			tensorOf("features", "FP32", []int64{3, 16}, nil, 0),
			tensorOf("category", "INT64", []int64{3}, []int64{7, 0, 4}, 0)}},
		{"digits-three-outputs", []inference.Tensor{tensorOf("image", "FP32", []int64{2, 1, 28, 28}, nil, 0)}},
		{"segment-dynamic-hw", []inference.Tensor{tensorOf("image", "FP32", []int64{1, 3, 12, 10}, nil, 0)}},
		{"vad-recurrent", []inference.Tensor{
			tensorOf("input", "FP32", []int64{1, 64}, nil, 0),
			tensorOf("state", "FP32", []int64{2, 1, 32}, nil, 0),
			tensorOf("sr", "INT64", []int64{}, []int64{16000}, 0)}},
		{"text-attention", []inference.Tensor{
			tensorOf("input_ids", "INT64", []int64{2, 7}, nil, 100),
			tensorOf("attention_mask", "INT64", []int64{2, 7}, []int64{1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}, 0)}},
		{"image-no-batch", []inference.Tensor{tensorOf("image", "FP32", []int64{3, 9, 11}, nil, 0)}},
	}
}

// direct runs a zoo model in ONNX Runtime, as infaas's reference.
func direct(t *testing.T, model string, in []inference.Tensor) []inference.Tensor {
	t.Helper()
	if err := executor.Init(); err != nil {
		t.Fatal(err)
	}
	b, err := contracts.Build(model)
	if err != nil {
		t.Fatal(err)
	}
	s, err := executor.Load(b, executor.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameOutputs requires got to match want: names, datatypes and shapes
// exactly, floats within 1e-5, integers exactly.
func sameOutputs(t *testing.T, how string, got, want []inference.Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", how, len(got), len(want))
	}
	for j := range want {
		g, w := got[j], want[j]
		if g.Name != w.Name || g.Datatype != w.Datatype || !slices.Equal(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
			t.Fatalf("%s: output %d is %s %s %v (%d bytes), want %s %s %v (%d bytes)", how, j,
				g.Name, g.Datatype, g.Shape, len(g.Data), w.Name, w.Datatype, w.Shape, len(w.Data))
		}
		switch w.Datatype {
		case "FP32":
			worst := 0.0
			for k := 0; k < len(w.Data); k += 4 {
				a := math.Float32frombits(binary.LittleEndian.Uint32(g.Data[k:]))
				b := math.Float32frombits(binary.LittleEndian.Uint32(w.Data[k:]))
				worst = max(worst, math.Abs(float64(a)-float64(b)))
			}
			if worst > 1e-5 {
				t.Errorf("%s: output %s differs from the direct run by up to %g", how, w.Name, worst)
			}
		default:
			if !bytes.Equal(g.Data, w.Data) {
				t.Errorf("%s: output %s differs from the direct run", how, w.Name)
			}
		}
	}
}

// jsonValues writes a tensor's data as JSON numbers.
func jsonValues(t inference.Tensor) []any {
	var out []any
	switch t.Datatype {
	case "FP32":
		for k := 0; k < len(t.Data); k += 4 {
			out = append(out, json.Number(strconv.FormatFloat(float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[k:]))), 'g', -1, 32)))
		}
	case "INT64":
		for k := 0; k < len(t.Data); k += 8 {
			out = append(out, int64(binary.LittleEndian.Uint64(t.Data[k:])))
		}
	}
	return out
}

// fromJSON turns a JSON answer's tensor back into raw bytes.
func fromJSON(name, datatype string, shape []int64, data []json.Number) (inference.Tensor, error) {
	t := inference.Tensor{Name: name, Datatype: datatype, Shape: shape}
	for _, v := range data {
		switch datatype {
		case "FP32":
			f, err := strconv.ParseFloat(string(v), 32)
			if err != nil {
				return t, err
			}
			t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(float32(f)))
		case "INT64":
			i, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return t, err
			}
			t.Data = binary.LittleEndian.AppendUint64(t.Data, uint64(i))
		default:
			return t, fmt.Errorf("datatype %s", datatype)
		}
	}
	return t, nil
}

type jsonAnswer struct {
	Parameters map[string]any `json:"parameters"`
	Outputs    []struct {
		Name       string         `json:"name"`
		Datatype   string         `json:"datatype"`
		Shape      []int64        `json:"shape"`
		Data       []json.Number  `json:"data"`
		Parameters map[string]any `json:"parameters"`
	} `json:"outputs"`
	Error string `json:"error"`
}

// inferJSON sends inputs over HTTP/JSON (outputs: the names to ask for,
// nil for all) and returns the status, the decoded outputs and the error
// message.
func inferJSON(t *testing.T, s *server, model string, in []inference.Tensor, outputs []string) (int, []inference.Tensor, string) {
	t.Helper()
	var ins []map[string]any
	for _, x := range in {
		ins = append(ins, map[string]any{"name": x.Name, "datatype": x.Datatype, "shape": x.Shape, "data": jsonValues(x)})
	}
	body := map[string]any{"inputs": ins}
	if outputs != nil {
		var outs []map[string]any
		for _, o := range outputs {
			outs = append(outs, map[string]any{"name": o})
		}
		body["outputs"] = outs
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post("http://"+s.addr+"/v2/models/"+model+"/infer", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a jsonAnswer
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	var got []inference.Tensor
	for _, o := range a.Outputs {
		x, err := fromJSON(o.Name, o.Datatype, o.Shape, o.Data)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, x)
	}
	return resp.StatusCode, got, a.Error
}

// inferBinary sends inputs with the binary tensor extension and asks for
// every output in binary.
func inferBinary(t *testing.T, s *server, model string, in []inference.Tensor, outputs []string) []inference.Tensor {
	t.Helper()
	var ins []map[string]any
	var payload []byte
	for _, x := range in {
		ins = append(ins, map[string]any{"name": x.Name, "datatype": x.Datatype, "shape": x.Shape,
			"parameters": map[string]any{"binary_data_size": len(x.Data)}})
		payload = append(payload, x.Data...)
	}
	var outs []map[string]any
	for _, o := range outputs {
		outs = append(outs, map[string]any{"name": o, "parameters": map[string]any{"binary_data": true}})
	}
	hdr, _ := json.Marshal(map[string]any{"inputs": ins, "outputs": outs})
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/v2/models/"+model+"/infer", bytes.NewReader(append(hdr, payload...)))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(hdr)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("binary: HTTP %d: %s", resp.StatusCode, raw)
	}
	n, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if err != nil || n > len(raw) {
		t.Fatalf("binary answer without a header length (%q): %s", resp.Header.Get("Inference-Header-Content-Length"), raw)
	}
	var a jsonAnswer
	if err := json.Unmarshal(raw[:n], &a); err != nil {
		t.Fatal(err)
	}
	rest := raw[n:]
	var got []inference.Tensor
	for _, o := range a.Outputs {
		size, ok := o.Parameters["binary_data_size"].(float64)
		if !ok || int(size) > len(rest) {
			t.Fatalf("output %s: binary_data_size %v of %d bytes left", o.Name, o.Parameters["binary_data_size"], len(rest))
		}
		got = append(got, inference.Tensor{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape, Data: rest[:int(size)]})
		rest = rest[int(size):]
	}
	return got
}

// inferGRPC sends inputs over gRPC as raw contents.
func inferGRPC(t *testing.T, s *server, model string, in []inference.Tensor) []inference.Tensor {
	t.Helper()
	req := &inferencepb.ModelInferRequest{ModelName: model}
	for _, x := range in {
		req.Inputs = append(req.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: x.Name, Datatype: x.Datatype, Shape: x.Shape})
		req.RawInputContents = append(req.RawInputContents, x.Data)
	}
	resp, err := grpcClient(t, s).ModelInfer(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	var got []inference.Tensor
	for i, o := range resp.GetOutputs() {
		got = append(got, inference.Tensor{Name: o.GetName(), Datatype: o.GetDatatype(), Shape: o.GetShape(), Data: resp.GetRawOutputContents()[i]})
	}
	return got
}

// TestAnyModel registers the contract zoo — two inputs of different types,
// three outputs, dynamic height and width, a recurrent model with state
// and an INT64 scalar, a text classifier with input_ids and
// attention_mask, a model without a batch dimension — with no editing and
// no accuracy, and serves each over HTTP/JSON, the binary extension and
// gRPC with the outputs of a direct ONNX Runtime run.
func TestAnyModel(t *testing.T) {
	s := startServer(t, t.TempDir())
	c := ctx(t)
	for _, m := range contracts.Models() {
		if _, err := s.c.Register(c, client.Registration{Name: m.Name, Task: m.Task, Dataset: m.Dataset,
			ModelPath: zootest.Path(t, "models/"+m.Name+".onnx")}); err != nil {
			t.Fatalf("register %s: %v", m.Name, err)
		}
		if _, err := s.c.Wait(c, m.Name, nil); err != nil {
			t.Fatalf("register %s: %v\n%s", m.Name, err, s.log.String())
		}
	}
	for _, tc := range contractCases() {
		t.Run(tc.model, func(t *testing.T) {
			want := direct(t, tc.model, tc.inputs)
			vs, err := s.c.Variants(c, tc.model)
			if err != nil {
				t.Fatal(err)
			}
			// The exact model is always kept: the fp32 variant with the
			// largest max batch serves the whole request.
			fp32 := -1
			for i, v := range vs {
				if v.Precision == "fp32" && (fp32 < 0 || v.MaxBatch > vs[fp32].MaxBatch) {
					fp32 = i
				}
			}
			if fp32 < 0 {
				t.Fatalf("no fp32 variant kept: %v", vs)
			}
			for _, v := range vs {
				if v.Fidelity == nil {
					t.Errorf("%s has no fidelity", v.Name)
				}
			}
			v := vs[fp32].Name
			var names []string
			for _, o := range want {
				names = append(names, o.Name)
			}
			code, got, msg := inferJSON(t, s, v, tc.inputs, nil)
			if code != 200 {
				t.Fatalf("HTTP/JSON: %d %s", code, msg)
			}
			sameOutputs(t, "HTTP/JSON", got, want)
			sameOutputs(t, "binary", inferBinary(t, s, v, tc.inputs, names), want)
			sameOutputs(t, "gRPC", inferGRPC(t, s, v, tc.inputs), want)

			// Model-less: the architecture, served by whichever variant.
			code, got, msg = inferJSON(t, s, tc.model, tc.inputs, nil)
			if code != 200 || len(got) != len(want) {
				t.Fatalf("architecture: %d %s, %d outputs", code, msg, len(got))
			}
			for j := range want {
				if got[j].Name != want[j].Name || !slices.Equal(got[j].Shape, want[j].Shape) {
					t.Errorf("architecture: output %s %v, want %s %v", got[j].Name, got[j].Shape, want[j].Name, want[j].Shape)
				}
			}
		})
	}

	t.Run("outputs chosen and ordered", func(t *testing.T) {
		in := contractCases()[1].inputs
		all := direct(t, "digits-three-outputs", in)
		code, got, msg := inferJSON(t, s, "digits-three-outputs", in, []string{"label", "logits"})
		if code != 200 || len(got) != 2 || got[0].Name != "label" || got[1].Name != "logits" {
			t.Fatalf("%d %s: %d outputs", code, msg, len(got))
		}
		if !bytes.Equal(got[0].Data, all[2].Data) {
			t.Errorf("label %v, want %v", got[0].Data, all[2].Data)
		}
	})

	t.Run("classification extension", func(t *testing.T) {
		in := contractCases()[1].inputs
		var ins []map[string]any
		for _, x := range in {
			ins = append(ins, map[string]any{"name": x.Name, "datatype": x.Datatype, "shape": x.Shape, "data": jsonValues(x)})
		}
		b, _ := json.Marshal(map[string]any{"inputs": ins,
			"outputs": []map[string]any{{"name": "logits", "parameters": map[string]any{"classification": 3}}, {"name": "label"}}})
		resp, err := http.Post("http://"+s.addr+"/v2/models/digits-three-outputs/infer", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct {
			Outputs []struct {
				Name     string  `json:"name"`
				Datatype string  `json:"datatype"`
				Shape    []int64 `json:"shape"`
				Data     []any   `json:"data"`
			} `json:"outputs"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 200 {
			t.Fatalf("HTTP %d: %v", resp.StatusCode, err)
		}
		if len(a.Outputs) != 2 || a.Outputs[0].Datatype != "BYTES" || !slices.Equal(a.Outputs[0].Shape, []int64{2, 3}) || len(a.Outputs[0].Data) != 6 {
			t.Fatalf("classification answer %+v", a.Outputs)
		}
		// The top class of each row is the model's own label output.
		for r := range 2 {
			top, _ := a.Outputs[0].Data[3*r].(string)
			parts := strings.Split(top, ":")
			label, _ := a.Outputs[1].Data[r].(float64)
			if len(parts) != 2 || parts[1] != strconv.Itoa(int(label)) {
				t.Errorf("row %d: top class %q, label output %v", r, top, label)
			}
		}
	})

	t.Run("load generator fills dynamic dimensions", func(t *testing.T) {
		// `infaas loadgen` against a model whose sequence length is
		// dynamic, over both transports: the shapes given, the
		// profiler's default, and two inputs that disagree (the server
		// refuses every request, and says why).
		// Models whose dimension 0 is not the batch take their
		// tensors whole: the recurrent model (a scalar sample rate, its
		// state's batch second) and the one without a batch dimension.
		for _, tc := range []struct {
			name   string
			model  string
			args   []string
			failed bool
		}{
			{"given", "text-attention", []string{"--shape", "input_ids=6", "--shape", "attention_mask=6"}, false},
			{"default over gRPC", "text-attention", []string{"--protocol", "grpc", "--grpc", s.grpc}, false},
			{"disagreeing", "text-attention", []string{"--shape", "input_ids=6", "--shape", "attention_mask=7"}, true},
			{"scalar and state", "vad-recurrent", nil, false},
			{"scalar and state over gRPC", "vad-recurrent", []string{"--protocol", "grpc", "--grpc", s.grpc}, false},
			{"no batch dimension", "image-no-batch", []string{"--shape", "image=3,9,11"}, false},
		} {
			out := filepath.Join(t.TempDir(), "summary.json")
			args := append([]string{"loadgen", "--server", s.addr, "--model", tc.model, "--schedule", "constant:20:1s",
				"--quiet", "--json", out}, tc.args...)
			msg, err := exec.Command(infaasBinary(t), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.name, err, msg)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var sum struct {
				Sent, Answered, Failed, Timed int
				ComputeMeanMs                 float64 `json:"compute_mean_ms"`
			}
			if err := json.Unmarshal(b, &sum); err != nil {
				t.Fatal(err)
			}
			want := sum.Answered
			if tc.failed {
				want = sum.Failed
			}
			if sum.Sent == 0 || want != sum.Sent {
				t.Errorf("%s: %+v, want every request %s\n%s", tc.name, sum, map[bool]string{true: "failed", false: "answered"}[tc.failed], msg)
			}
			// Every answer says, over either transport, where its time
			// went in the worker.
			if sum.Timed != sum.Answered || (sum.Answered > 0 && sum.ComputeMeanMs <= 0) {
				t.Errorf("%s: %d of %d answers gave their timing, compute %.3f ms on average", tc.name, sum.Timed, sum.Answered, sum.ComputeMeanMs)
			}
		}
	})

	t.Run("infaas query sends every input", func(t *testing.T) {
		var in []inference.Tensor
		for _, tc := range contractCases() {
			if tc.model == "text-attention" {
				in = tc.inputs
			}
		}
		dir := t.TempDir()
		var args []string
		for _, x := range in {
			b, _ := json.Marshal(map[string]any{"shape": x.Shape, "data": jsonValues(x)})
			path := filepath.Join(dir, x.Name+".json")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--input", x.Name+"="+path)
		}
		query := func(args ...string) (string, error) {
			out, err := exec.Command(infaasBinary(t), append([]string{"query", "--server", s.addr, "--model", "text-attention"}, args...)...).CombinedOutput()
			return string(out), err
		}
		out, err := query(append(args, "--json")...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var a jsonAnswer
		dec := json.NewDecoder(strings.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&a); err != nil || len(a.Outputs) == 0 {
			t.Fatalf("answer %q: %v", out, err)
		}
		code, want, msg := inferJSON(t, s, "text-attention", in, nil)
		if code != 200 {
			t.Fatalf("the same query over HTTP: %d %s", code, msg)
		}
		for i, o := range a.Outputs {
			x, err := fromJSON(o.Name, o.Datatype, o.Shape, o.Data)
			if err != nil {
				t.Fatal(err)
			}
			if x.Name != want[i].Name || fmt.Sprint(x.Shape) != fmt.Sprint(want[i].Shape) || !bytes.Equal(x.Data, want[i].Data) {
				t.Errorf("output %s %v from the CLI differs from the server's answer to the same request (%s %v)", x.Name, x.Shape, want[i].Name, want[i].Shape)
			}
		}
		// What the CLI says when an input is missing, unnamed, unknown
		// or of the wrong shape.
		for _, tc := range []struct {
			args []string
			want string
		}{
			{args[:2], `needs input "attention_mask" too`},
			{[]string{"--input", filepath.Join(dir, "input_ids.json")}, "give each as --input NAME=FILE"},
			{append(slices.Clone(args), "--input", "mask="+filepath.Join(dir, "input_ids.json")), `no input "mask"`},
		} {
			if out, err := query(tc.args...); err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("%v: %v, %q; want it refused saying %q", tc.args, err, out, tc.want)
			}
		}
		bad := filepath.Join(dir, "bad.json")
		_ = os.WriteFile(bad, []byte(`{"shape": [2, 7, 1], "data": [1]}`), 0o600)
		if out, err := query("--input", "input_ids="+bad, args[2], args[3]); err == nil || !strings.Contains(out, "has 3 dimensions; the model's") {
			t.Errorf("a 3-D tensor for a 2-D input: %v, %q", err, out)
		}
	})

	t.Run("dynamic shapes batch apart", func(t *testing.T) {
		// Requests of different sequence lengths, concurrently: each gets
		// its own answer.
		type res struct {
			seq int
			out []inference.Tensor
			err string
		}
		done := make(chan res, 8)
		for seq := 1; seq <= 8; seq++ {
			go func() {
				in := []inference.Tensor{
					tensorOf("input_ids", "INT64", []int64{1, int64(seq)}, nil, 100),
					tensorOf("attention_mask", "INT64", []int64{1, int64(seq)}, nil, 1+1<<40)}
				for k := range seq { // mask all ones
					binary.LittleEndian.PutUint64(in[1].Data[8*k:], 1)
				}
				code, got, msg := inferJSON(t, s, "text-attention", in, nil)
				if code != 200 {
					done <- res{seq: seq, err: fmt.Sprint(code, msg)}
					return
				}
				done <- res{seq: seq, out: got}
			}()
		}
		for range 8 {
			r := <-done
			if r.err != "" {
				t.Fatalf("sequence %d: %s", r.seq, r.err)
			}
			if len(r.out) != 1 || !slices.Equal(r.out[0].Shape, []int64{1, 2}) {
				t.Errorf("sequence %d: %v", r.seq, r.out)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		text := contractCases()[4].inputs
		tab := contractCases()[0].inputs
		vad := contractCases()[3].inputs
		wrongName := slices.Clone(text)
		wrongName[1].Name = "mask"
		floatIDs := slices.Clone(text)
		floatIDs[0] = tensorOf("input_ids", "FP32", []int64{2, 7}, nil, 0)
		shortSeq := slices.Clone(text)
		shortSeq[1] = tensorOf("attention_mask", "INT64", []int64{2, 6}, nil, 2)
		narrow := slices.Clone(tab)
		narrow[0] = tensorOf("features", "FP32", []int64{3, 15}, nil, 0)
		batches := slices.Clone(tab)
		batches[1] = tensorOf("category", "INT64", []int64{2}, nil, 8)
		srVector := slices.Clone(vad)
		srVector[2] = tensorOf("sr", "INT64", []int64{1}, []int64{16000}, 0)
		for _, bc := range []struct {
			name, model string
			in          []inference.Tensor
			outputs     []string
			code        int
			says        []string
		}{
			{"wrong input name", "text-attention", wrongName, nil, 400, []string{`no input "mask"`, `"input_ids", "attention_mask"`}},
			{"missing input", "text-attention", text[:1], nil, 400, []string{`needs input "attention_mask"`}},
			{"unknown output", "text-attention", text, []string{"probs"}, 400, []string{`no output "probs"`, `"logits"`}},
			{"FP32 for an INT64 input", "text-attention", floatIDs, nil, 400, []string{`"input_ids" INT64 [batch, sequence]`}},
			{"sequences disagree", "text-attention", shortSeq, nil, 400, []string{"sequence = 6", "sequence = 7"}},
			{"shape outside the contract", "tabular-two-inputs", narrow, nil, 400, []string{"dimension 1 must be 16"}},
			{"batches disagree", "tabular-two-inputs", batches, nil, 400, []string{"batch 2", "3"}},
			{"vector for a scalar", "vad-recurrent", srVector, nil, 400, []string{`"sr" INT64 []`}},
			{"unknown version", "text-attention/versions/2", text, nil, 404, []string{`no version "2"`}},
		} {
			code, _, msg := inferJSON(t, s, bc.model, bc.in, bc.outputs)
			if code != bc.code {
				t.Errorf("%s: HTTP %d %q, want %d", bc.name, code, msg, bc.code)
				continue
			}
			for _, w := range bc.says {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: %q does not say %q", bc.name, msg, w)
				}
			}
		}
	})

	t.Run("metadata", func(t *testing.T) {
		m, err := s.c.Model(c, "text-attention")
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Inputs) != 2 || m.Inputs[0].Name != "input_ids" || m.Inputs[1].Datatype != "INT64" ||
			!slices.Equal(m.Inputs[0].Shape, []int64{-1, -1}) || m.Outputs[0].Name != "logits" {
			t.Fatalf("metadata %+v", m)
		}
		m, err = s.c.Model(c, "vad.audio")
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Inputs) != 3 || m.Inputs[2].Name != "sr" || len(m.Inputs[2].Shape) != 0 || len(m.Outputs) != 2 {
			t.Fatalf("use case metadata %+v", m)
		}
	})

	t.Run("statistics", func(t *testing.T) {
		resp, err := http.Get("http://" + s.addr + "/v2/models/text-attention/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st inference.ModelStats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
			t.Fatalf("HTTP %d: %v", resp.StatusCode, err)
		}
		var served, fails int64
		for _, m := range st.ModelStats {
			if !strings.HasPrefix(m.Name, "text-attention.") || m.Version != "1" {
				t.Errorf("stats of %s version %s under text-attention", m.Name, m.Version)
			}
			served += m.InferenceStats.Success.Count
			fails += m.InferenceStats.Fail.Count
			if m.InferenceStats.Success.Count > 0 && (m.InferenceStats.ComputeInfer.Ns <= 0 || len(m.BatchStats) == 0 || m.LastInference == 0) {
				t.Errorf("%s: %+v", m.Name, m)
			}
		}
		// Five earlier subtests' worth: the fp32 variant three ways, the
		// architecture once, eight sequence lengths.
		if served < 12 {
			t.Errorf("text-attention served %d requests by its stats, want at least 12: %+v", served, st)
		}
	})
}

// TestInt8Conv: a convolutional zoo model gets an int8 variant (Conv
// quantised) that is smaller, within the allowed accuracy loss, with its
// fidelity shown. It registers the model twice and logs both kept sets:
// a variant near a tie on some dimension can still differ from one
// registration to the next (here int8 at batch 1 against batch 32: about
// 11 µs a sample against 2.4 µs straddles the 10 µs throughput floor), so
// that is reported, not asserted.
func TestInt8Conv(t *testing.T) {
	s := startServer(t, t.TempDir())
	c := ctx(t)
	kept := map[string][]string{}
	// The first registration of a fresh server shares the machine with
	// its start-up (worker processes loading ONNX Runtime): not idle.
	for _, name := range []string{"mnist-cnn-s-warm-up", "mnist-cnn-s", "mnist-cnn-s-again"} {
		if _, err := s.c.Register(c, client.Registration{Name: name, Task: "classification", Dataset: "mnist",
			ModelPath: zootest.Path(t, "models/mnist-cnn-s.onnx"), ValidationDir: zootest.Path(t, "data/mnist"), InputScale: pixelScale}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.Wait(c, name, nil); err != nil {
			t.Fatalf("register %s: %v\n%s", name, err, s.log.String())
		}
		arch, err := s.c.Architecture(c, name)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := s.c.Variants(c, name)
		if err != nil {
			t.Fatal(err)
		}
		var int8 *catalog.Variant
		for i, v := range vs {
			kept[name] = append(kept[name], strings.TrimPrefix(v.Name, name+"."))
			if v.Fidelity == nil || v.Fidelity.Samples != 1000 {
				t.Errorf("%s: fidelity %+v, want one measured on the 1000 validation samples", v.Name, v.Fidelity)
			}
			if v.Precision == "int8" && int8 == nil {
				int8 = &vs[i]
			}
		}
		if int8 == nil {
			t.Fatalf("%s: no int8 variant kept; dropped: %v", name, arch.Dropped)
		}
		if int8.FileBytes >= arch.ModelBytes {
			t.Errorf("int8 graph is %d bytes, fp32 %d: want it smaller", int8.FileBytes, arch.ModelBytes)
		}
		if d := arch.Accuracy - int8.Accuracy; d > 1 {
			t.Errorf("int8 lost %.2f points (%.2f%% against %.2f%%); at most 1 is allowed", d, int8.Accuracy, arch.Accuracy)
		}
		if f := int8.Fidelity; f == nil || f.Top1 < 0.98 {
			t.Errorf("int8 fidelity %+v: want top-1 agreement with fp32 ≥ 98 %%", f)
		}
		slices.Sort(kept[name])
	}
	t.Logf("kept, first registration:  %v", kept["mnist-cnn-s"])
	t.Logf("kept, second registration: %v", kept["mnist-cnn-s-again"])
}
