package contracts_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infaas/infaas/onnx"
	"github.com/infaas/infaas/onnx/onnxtest"
	"github.com/infaas/infaas/zoo/contracts"
)

const maxModelBytes = 200_000

// port is one graph input or output as the brief gives it: shape is the dims
// joined by commas, a name for a dynamic dim (dim_param), "" for a scalar.
type port struct {
	name  string
	dtype onnx.TensorProto_DataType
	shape string
}

type contract struct {
	task, dataset string
	in, out       []port
}

const (
	f32 = onnx.TensorProto_FLOAT
	i64 = onnx.TensorProto_INT64
)

var order = []string{
	"tabular-two-inputs", "digits-three-outputs", "segment-dynamic-hw",
	"vad-recurrent", "text-attention", "image-no-batch",
}

var want = map[string]contract{
	"tabular-two-inputs": {"classification", "tabular",
		[]port{{"features", f32, "batch,16"}, {"category", i64, "batch"}},
		[]port{{"scores", f32, "batch,4"}}},
	"digits-three-outputs": {"classification", "digits-multi",
		[]port{{"image", f32, "batch,1,28,28"}},
		[]port{{"logits", f32, "batch,10"}, {"embedding", f32, "batch,32"}, {"label", i64, "batch"}}},
	"segment-dynamic-hw": {"segmentation", "synthetic",
		[]port{{"image", f32, "batch,3,height,width"}},
		[]port{{"mask", f32, "batch,1,height,width"}}},
	"vad-recurrent": {"vad", "audio",
		[]port{{"input", f32, "batch,64"}, {"state", f32, "2,batch,32"}, {"sr", i64, ""}},
		[]port{{"output", f32, "batch,1"}, {"stateN", f32, "2,batch,32"}}},
	"text-attention": {"classification", "text",
		[]port{{"input_ids", i64, "batch,sequence"}, {"attention_mask", i64, "batch,sequence"}},
		[]port{{"logits", f32, "batch,2"}}},
	"image-no-batch": {"heatmap", "synthetic",
		[]port{{"image", f32, "3,height,width"}},
		[]port{{"heatmap", f32, "height,width"}}},
}

func TestModelsList(t *testing.T) {
	ms := contracts.Models()
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
		w := want[m.Name]
		if m.Task != w.task || m.Dataset != w.dataset {
			t.Errorf("%s: task/dataset %s/%s, want %s/%s", m.Name, m.Task, m.Dataset, w.task, w.dataset)
		}
		if m.Description == "" {
			t.Errorf("%s: no description", m.Name)
		}
	}
	if !slices.Equal(names, order) {
		t.Fatalf("Models() = %v, want %v", names, order)
	}
	if _, err := contracts.Build("no-such-model"); err == nil {
		t.Error("Build of an unknown name succeeded")
	}
}

func build(t *testing.T, name string) []byte {
	t.Helper()
	b, err := contracts.Build(name)
	if err != nil {
		t.Fatalf("Build(%s): %v", name, err)
	}
	return b
}

func TestCommittedModelsUpToDate(t *testing.T) {
	dir := filepath.Join(onnxtest.RepoRoot(t), "zoo", "models")
	for _, name := range order {
		b := build(t, name)
		if again := build(t, name); !bytes.Equal(b, again) {
			t.Errorf("%s: two builds differ", name)
		}
		if len(b) >= maxModelBytes {
			t.Errorf("%s: %d bytes, want under %d", name, len(b), maxModelBytes)
		}
		committed, err := os.ReadFile(filepath.Join(dir, name+".onnx"))
		if err != nil {
			t.Errorf("%s: %v: run go run ./zoo/contracts/gen", name, err)
			continue
		}
		if !bytes.Equal(b, committed) {
			t.Errorf("%s: zoo/models/%s.onnx (%d bytes) differs from Build (%d bytes): run go run ./zoo/contracts/gen",
				name, name, len(committed), len(b))
		}
	}
}

func shapeString(v *onnx.ValueInfoProto) string {
	var dims []string
	for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
		if p := d.GetDimParam(); p != "" {
			dims = append(dims, p)
		} else {
			dims = append(dims, strconv.FormatInt(d.GetDimValue(), 10))
		}
	}
	return strings.Join(dims, ",")
}

// TestDeclaredContracts checks the graphs' declared inputs and outputs, both
// in the protobuf and as ONNX Runtime reports them.
func TestDeclaredContracts(t *testing.T) {
	onnxtest.InitORT(t)
	for _, name := range order {
		w := want[name]
		b := build(t, name)
		m, err := onnx.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.GetIrVersion() != 8 || onnx.OpsetVersion(m, "") != 17 || len(m.GetOpsetImport()) != 1 {
			t.Errorf("%s: ir_version %d, opsets %v; want 8 and default domain 17 only", name, m.GetIrVersion(), m.GetOpsetImport())
		}
		check := func(kind string, got []*onnx.ValueInfoProto, want []port) {
			if len(got) != len(want) {
				t.Errorf("%s: %d %ss, want %d", name, len(got), kind, len(want))
				return
			}
			for i, p := range want {
				if _, err := onnx.Shape(got[i]); err != nil {
					t.Errorf("%s: %s %d: %v", name, kind, i, err) // unknown rank; a scalar must be rank 0
				}
				dt, _ := onnx.ElemType(got[i])
				if got[i].GetName() != p.name || dt != p.dtype || shapeString(got[i]) != p.shape {
					t.Errorf("%s: %s %d is %s %s [%s], want %s %s [%s]", name, kind, i,
						got[i].GetName(), dt, shapeString(got[i]), p.name, p.dtype, p.shape)
				}
			}
		}
		check("input", onnx.GraphInputs(m.GetGraph()), w.in)
		check("output", m.GetGraph().GetOutput(), w.out)

		ins, outs, err := ort.GetInputOutputInfoWithONNXData(b)
		if err != nil {
			t.Fatalf("%s: ONNX Runtime refused the model: %v", name, err)
		}
		checkORT := func(kind string, got []ort.InputOutputInfo, want []port) {
			if len(got) != len(want) {
				t.Errorf("%s: ONNX Runtime reports %d %ss, want %d", name, len(got), kind, len(want))
				return
			}
			for i, p := range want {
				wantDims := ort.Shape{}
				if p.shape != "" {
					for _, d := range strings.Split(p.shape, ",") {
						n, err := strconv.ParseInt(d, 10, 64)
						if err != nil {
							n = -1 // ONNX Runtime reports named dims as -1
						}
						wantDims = append(wantDims, n)
					}
				}
				g := got[i]
				wantType := ort.TensorElementDataType(ort.TensorElementDataTypeFloat)
				if p.dtype == i64 {
					wantType = ort.TensorElementDataTypeInt64
				}
				if g.Name != p.name || g.OrtValueType != ort.ONNXTypeTensor || g.DataType != wantType || !g.Dimensions.Equals(wantDims) {
					t.Errorf("%s: ONNX Runtime %s %d is %v, want %s %v %v", name, kind, i, &g, p.name, wantType, wantDims)
				}
			}
		}
		checkORT("input", ins, w.in)
		checkORT("output", outs, w.out)
	}
}

// --- running models in ONNX Runtime ---

type session struct {
	name    string
	s       *ort.DynamicAdvancedSession
	outputs []string
}

// newSession opens the model in ONNX Runtime on CPU with the contract's
// inputs and outputs. optimize=false runs the operators as written.
func newSession(t *testing.T, name string, optimize bool) *session {
	t.Helper()
	onnxtest.InitORT(t)
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	// Runs that are meant to fail return their error; don't also log it.
	if err := opts.SetLogSeverityLevel(ort.LoggingLevelFatal); err != nil {
		t.Fatal(err)
	}
	if !optimize {
		if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
			t.Fatal(err)
		}
	}
	var ins, outs []string
	for _, p := range want[name].in {
		ins = append(ins, p.name)
	}
	for _, p := range want[name].out {
		outs = append(outs, p.name)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(build(t, name), ins, outs, opts)
	if err != nil {
		t.Fatalf("%s: ONNX Runtime refused the model: %v", name, err)
	}
	t.Cleanup(func() { s.Destroy() })
	return &session{name: name, s: s, outputs: outs}
}

// run feeds the inputs (in the contract's order) and returns the outputs,
// allocated by ONNX Runtime.
func (s *session) run(t *testing.T, inputs ...ort.Value) []ort.Value {
	t.Helper()
	outs, err := s.try(t, inputs...)
	if err != nil {
		t.Fatalf("%s: run: %v", s.name, err)
	}
	return outs
}

func (s *session) try(t *testing.T, inputs ...ort.Value) ([]ort.Value, error) {
	t.Helper()
	outs := make([]ort.Value, len(s.outputs))
	if err := s.s.Run(inputs, outs); err != nil {
		return nil, err
	}
	for _, o := range outs {
		t.Cleanup(func() { o.Destroy() })
	}
	return outs, nil
}

func newTensor[T ort.TensorData](t *testing.T, data []T, shape ...int64) *ort.Tensor[T] {
	t.Helper()
	v, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		t.Fatalf("tensor %v: %v", shape, err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func scalar[T ort.TensorData](t *testing.T, x T) *ort.Scalar[T] {
	t.Helper()
	v, err := ort.NewScalar(x)
	if err != nil {
		t.Fatalf("scalar: %v", err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

// output returns outs[i]'s data after checking its element type and shape.
func output[T ort.TensorData](t *testing.T, s *session, outs []ort.Value, i int, shape ...int64) []T {
	t.Helper()
	v, ok := outs[i].(*ort.Tensor[T])
	if !ok {
		var zero T
		t.Fatalf("%s: output %s is %T, want *ort.Tensor[%T]", s.name, s.outputs[i], outs[i], zero)
	}
	if !v.GetShape().Equals(ort.NewShape(shape...)) {
		t.Fatalf("%s: output %s has shape %v, want %v", s.name, s.outputs[i], v.GetShape(), shape)
	}
	return slices.Clone(v.GetData())
}

func uniform(r *rand.Rand, n int, lo, hi float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = lo + (hi-lo)*r.Float32()
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func requireFinite(t *testing.T, what string, xs []float32) {
	t.Helper()
	for i, x := range xs {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("%s[%d] = %v", what, i, x)
		}
	}
}

// requireClose fails when a and b differ by more than tol (absolute).
func requireClose(t *testing.T, what string, a, b []float32, tol float64) {
	t.Helper()
	if d := maxAbsDiff(a, b); d > tol {
		t.Fatalf("%s: differ by %g (tolerance %g):\n%v\n%v", what, d, tol, a, b)
	}
}

// requireDifferent fails when a and b differ by less than min.
func requireDifferent(t *testing.T, what string, a, b []float32, min float64) {
	t.Helper()
	if d := maxAbsDiff(a, b); d < min {
		t.Fatalf("%s: differ by only %g, want at least %g", what, d, min)
	}
}

// optimizations runs f once with ONNX Runtime's graph optimisations and once
// without, so both the fused and the as-written graphs are exercised.
func optimizations(t *testing.T, f func(t *testing.T, optimize bool)) {
	for _, opt := range []bool{true, false} {
		t.Run(fmt.Sprintf("optimize=%v", opt), func(t *testing.T) { f(t, opt) })
	}
}

func TestTabularTwoInputs(t *testing.T) {
	optimizations(t, func(t *testing.T, opt bool) {
		s := newSession(t, "tabular-two-inputs", opt)
		r := rand.New(rand.NewPCG(1, 1))
		one := func(feat []float32, cat int64) []float32 {
			outs := s.run(t, newTensor(t, feat, 1, 16), newTensor(t, []int64{cat}, 1))
			return output[float32](t, s, outs, 0, 1, 4)
		}
		for _, n := range []int64{1, 4, 7} {
			feat := uniform(r, int(n*16), -1, 1)
			cats := make([]int64, n)
			for i := range cats {
				cats[i] = int64(i*3) % 8
			}
			outs := s.run(t, newTensor(t, feat, n, 16), newTensor(t, cats, n))
			scores := output[float32](t, s, outs, 0, n, 4)
			requireFinite(t, "scores", scores)
			// Rows are independent: each equals its own batch-1 run.
			for i := range n {
				requireClose(t, fmt.Sprintf("batch %d row %d vs alone", n, i),
					scores[4*i:4*i+4], one(feat[16*i:16*i+16], cats[i]), 1e-5)
			}
		}
		// The category really is used.
		feat := uniform(r, 16, -1, 1)
		requireDifferent(t, "category 2 vs 5", one(feat, 2), one(feat, 5), 1e-3)
		// A category outside the embedding table is refused, not read out of bounds.
		if _, err := s.try(t, newTensor(t, feat, 1, 16), newTensor(t, []int64{8}, 1)); err == nil {
			t.Error("category 8 (of 8) was accepted")
		}
	})
}

func TestDigitsThreeOutputs(t *testing.T) {
	dims, pixels := onnxtest.ReadIDX(t, filepath.Join(onnxtest.RepoRoot(t), "zoo", "data", "mnist", "inputs.idx"))
	if len(dims) != 3 || dims[1] != 28 || dims[2] != 28 {
		t.Fatalf("MNIST inputs have dims %v", dims)
	}
	optimizations(t, func(t *testing.T, opt bool) {
		s := newSession(t, "digits-three-outputs", opt)
		labels := map[int64]int{}
		for _, n := range []int64{1, 3, 16} {
			img := make([]float32, n*784)
			for i := range img {
				img[i] = float32(pixels[i]) / 255
			}
			outs := s.run(t, newTensor(t, img, n, 1, 28, 28))
			logits := output[float32](t, s, outs, 0, n, 10)
			emb := output[float32](t, s, outs, 1, n, 32)
			label := output[int64](t, s, outs, 2, n)
			requireFinite(t, "logits", logits)
			requireFinite(t, "embedding", emb)
			for i := range n {
				row := logits[10*i : 10*i+10]
				best := int64(0)
				for j, v := range row {
					if v > row[best] {
						best = int64(j)
					}
				}
				if label[i] != best {
					t.Fatalf("batch %d image %d: label %d, argmax of logits %v is %d", n, i, label[i], row, best)
				}
				labels[label[i]]++
			}
			if n > 1 {
				requireDifferent(t, "embeddings of images 0 and 1", emb[:32], emb[32:64], 1e-3)
			}
		}
		t.Logf("labels of the untrained model: %v", labels)
	})
}

func TestSegmentDynamicHW(t *testing.T) {
	optimizations(t, func(t *testing.T, opt bool) {
		s := newSession(t, "segment-dynamic-hw", opt)
		r := rand.New(rand.NewPCG(3, 3))
		for _, sz := range [][3]int64{{1, 16, 16}, {2, 17, 23}, {3, 8, 40}, {1, 1, 1}, {2, 64, 48}} {
			n, h, w := sz[0], sz[1], sz[2]
			img := uniform(r, int(n*3*h*w), 0, 1)
			outs := s.run(t, newTensor(t, img, n, 3, h, w))
			mask := output[float32](t, s, outs, 0, n, 1, h, w)
			lo, hi := float32(1), float32(0)
			for i, v := range mask {
				if !(v > 0 && v < 1) {
					t.Fatalf("%v: mask[%d] = %v, want in (0,1)", sz, i, v)
				}
				lo, hi = min(lo, v), max(hi, v)
			}
			if h*w > 1 && hi-lo < 1e-3 {
				t.Fatalf("%v: mask is constant (%v..%v)", sz, lo, hi)
			}
		}
	})
}

func TestVADRecurrent(t *testing.T) {
	optimizations(t, func(t *testing.T, opt bool) {
		s := newSession(t, "vad-recurrent", opt)
		r := rand.New(rand.NewPCG(4, 4))
		step := func(n int64, input, state []float32, sr int64) (out, stateN []float32) {
			outs := s.run(t, newTensor(t, input, n, 64), newTensor(t, state, 2, n, 32), scalar(t, sr))
			out = output[float32](t, s, outs, 0, n, 1)
			stateN = output[float32](t, s, outs, 1, 2, n, 32)
			requireFinite(t, "output", out)
			requireFinite(t, "stateN", stateN)
			for i, v := range out {
				if !(v > 0 && v < 1) {
					t.Fatalf("output[%d] = %v, want a probability in (0,1)", i, v)
				}
			}
			return out, stateN
		}
		for _, n := range []int64{1, 2, 5} {
			input := uniform(r, int(n*64), -1, 1)
			zero := make([]float32, 2*n*32)
			out0, state1 := step(n, input, zero, 16000)
			requireDifferent(t, "stateN vs a zero state", state1, zero, 1e-2)
			// Streaming: feed the new state back in.
			out1, state2 := step(n, input, state1, 16000)
			requireDifferent(t, "stateN vs state", state2, state1, 1e-3)
			requireDifferent(t, "output with zero vs carried state", out0, out1, 1e-5)
			// The input matters for the new state.
			_, state2b := step(n, uniform(r, int(n*64), -1, 1), state1, 16000)
			requireDifferent(t, "stateN for two inputs", state2, state2b, 1e-3)
			// sr matters.
			out8k, state8k := step(n, input, state1, 8000)
			requireDifferent(t, "output at 8 kHz vs 16 kHz", out1, out8k, 1e-5)
			requireDifferent(t, "stateN at 8 kHz vs 16 kHz", state2, state8k, 1e-3)
			// Batch rows are independent.
			if n > 1 {
				inRow := input[64:128]
				stRow := append(slices.Clone(state1[32:64]), state1[n*32+32:n*32+64]...)
				outRow, stNRow := step(1, inRow, stRow, 16000)
				requireClose(t, "batch row 1 output vs alone", out1[1:2], outRow, 1e-5)
				requireClose(t, "batch row 1 stateN vs alone",
					append(slices.Clone(state2[32:64]), state2[n*32+32:n*32+64]...), stNRow, 1e-5)
			}
		}
		// sr is declared rank 0 and is fed as an ort.Scalar (ort.NewTensor
		// refuses an empty shape). ONNX Runtime 1.24 does not check the
		// shape of a rank-0 input: a [1] tensor is accepted and broadcast,
		// so callers must enforce the contract themselves. Record it.
		input, state := uniform(r, 64, -1, 1), uniform(r, 64, -1, 1)
		wantOut, _ := step(1, input, state, 8000)
		if outs, err := s.try(t, newTensor(t, input, 1, 64), newTensor(t, state, 2, 1, 32), newTensor(t, []int64{8000}, 1)); err != nil {
			t.Logf("sr as a [1] tensor is refused: %v", err)
		} else {
			t.Logf("sr as a [1] tensor is accepted; output %v (scalar sr: %v)", output[float32](t, s, outs, 0, 1, 1), wantOut)
		}
	})
}

func TestTextAttention(t *testing.T) {
	optimizations(t, func(t *testing.T, opt bool) {
		s := newSession(t, "text-attention", opt)
		r := rand.New(rand.NewPCG(5, 5))
		ids := func(n int) []int64 {
			out := make([]int64, n)
			for i := range out {
				out[i] = 1 + r.Int64N(99)
			}
			return out
		}
		ones := func(n int) []int64 {
			out := make([]int64, n)
			for i := range out {
				out[i] = 1
			}
			return out
		}
		logits := func(n, seq int64, inputIDs, mask []int64) []float32 {
			outs := s.run(t, newTensor(t, inputIDs, n, seq), newTensor(t, mask, n, seq))
			l := output[float32](t, s, outs, 0, n, 2)
			requireFinite(t, "logits", l)
			return l
		}
		for _, seq := range []int64{1, 5, 8, 33} {
			for _, n := range []int64{1, 3} {
				logits(n, seq, ids(int(n*seq)), ones(int(n*seq)))
			}
		}

		// Two sentences of 5 and 8 tokens, each alone without padding.
		a, b := ids(5), ids(8)
		la := logits(1, 5, a, ones(5))
		lb := logits(1, 8, b, ones(8))
		requireDifferent(t, "logits of two sentences", la, lb, 1e-4)

		// Appending padding (any token ids, mask 0) does not change the logits.
		padded := append(slices.Clone(a), ids(3)...)
		padMask := append(ones(5), 0, 0, 0)
		requireClose(t, "5 tokens vs 5 tokens + 3 padding", la, logits(1, 8, padded, padMask), 1e-5)
		otherPad := append(slices.Clone(a), 99, 1, 42)
		requireClose(t, "padding token ids", la, logits(1, 8, otherPad, padMask), 1e-5)

		// In a batch, the padded row matches its unpadded run and the full row
		// is unaffected by its neighbour's padding.
		batch := logits(2, 8, append(slices.Clone(padded), b...), append(slices.Clone(padMask), ones(8)...))
		requireClose(t, "batched padded row", la, batch[:2], 1e-5)
		requireClose(t, "batched full row", lb, batch[2:], 1e-5)

		// Changing a real token changes the logits.
		changed := slices.Clone(padded)
		changed[2] = 1 + (changed[2] % 99)
		requireDifferent(t, "a real token changed", la, logits(1, 8, changed, padMask), 1e-4)
		// ...and so does unmasking a padding position.
		requireDifferent(t, "padding unmasked", la, logits(1, 8, padded, ones(8)), 1e-4)
	})
}

func TestImageNoBatch(t *testing.T) {
	optimizations(t, func(t *testing.T, opt bool) {
		s := newSession(t, "image-no-batch", opt)
		r := rand.New(rand.NewPCG(6, 6))
		for _, hw := range [][2]int64{{8, 8}, {5, 13}, {32, 17}, {1, 1}} {
			h, w := hw[0], hw[1]
			outs := s.run(t, newTensor(t, uniform(r, int(3*h*w), 0, 1), 3, h, w))
			heat := output[float32](t, s, outs, 0, h, w)
			for i, v := range heat {
				if !(v > 0 && v < 1) {
					t.Fatalf("%v: heatmap[%d] = %v, want in (0,1)", hw, i, v)
				}
			}
		}
		// A batched [1,3,h,w] image is not this model's contract.
		if _, err := s.try(t, newTensor(t, make([]float32, 3*8*8), 1, 3, 8, 8)); err == nil {
			t.Error("a rank-4 image was accepted")
		}
	})
}
