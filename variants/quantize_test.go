package variants

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infaas/infaas/onnx"
	"github.com/infaas/infaas/onnx/onnxtest"
)

func TestQuantizeDynamicMatchesFloat(t *testing.T) {
	tests := []struct {
		name       string
		model      *onnx.ModelProto
		inputShape []int64
		outputs    []string
		classes    int // > 0: also check argmax agreement over rows of this width

		wantMatMul, wantGemm, wantSkipped, wantWeights, wantKept int
		wantDQL                                                  int // DynamicQuantizeLinear nodes
		wantOpset                                                int64
		minRatio                                                 float64 // weight bytes before/after
		maxRelErr                                                float64
	}{
		{
			name: "mlp gemm transB relu gemm", model: mlpModel(1, 256, 512, 10),
			inputShape: []int64{512, 256}, outputs: []string{"logits"}, classes: 10,
			wantGemm: 2, wantWeights: 2, wantDQL: 2, wantOpset: 13, minRatio: 3.9, maxRelErr: 0.03,
		},
		{
			name: "rank-3 matmul add", model: matmulAddModel(2, 13, 7, 384, 96),
			inputShape: []int64{4, 7, 384}, outputs: []string{"y"},
			wantMatMul: 1, wantWeights: 1, wantDQL: 1, wantOpset: 13, minRatio: 3.9, maxRelErr: 0.03,
		},
		{
			name: "shared activation and weights", model: sharedModel(3, 64),
			inputShape: []int64{32, 64}, outputs: []string{"y", "z", "u", "r"},
			wantMatMul: 2, wantGemm: 1, wantSkipped: 1, wantWeights: 2, wantKept: 1, wantDQL: 1,
			// W is stored twice in int8, as is and transposed, next to V.
			wantOpset: 17, minRatio: 2.4, maxRelErr: 0.03,
		},
		{
			name: "opset 9 raised to 11", model: matmulAddModel(4, 9, 1, 128, 32),
			inputShape: []int64{16, 1, 128}, outputs: []string{"y"},
			wantMatMul: 1, wantWeights: 1, wantDQL: 1, wantOpset: 11, minRatio: 3.5, maxRelErr: 0.03,
		},
		{
			name: "ir 3 initializers listed as inputs", model: ir3Model(5, 128, 32),
			inputShape: []int64{16, 1, 128}, outputs: []string{"y"},
			wantMatMul: 1, wantWeights: 1, wantDQL: 1, wantOpset: 11, minRatio: 3.5, maxRelErr: 0.03,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fp32 := marshalModel(t, tc.model)
			int8Model, rep, err := QuantizeDynamic(fp32)
			if err != nil {
				t.Fatalf("QuantizeDynamic: %v", err)
			}
			if rep.MatMul != tc.wantMatMul || rep.Gemm != tc.wantGemm || len(rep.Skipped) != tc.wantSkipped ||
				rep.Weights != tc.wantWeights || rep.FloatWeightsKept != tc.wantKept || rep.OpsetAfter != tc.wantOpset {
				t.Fatalf("report = %+v\nwant MatMul=%d Gemm=%d skipped=%d weights=%d kept=%d opset=%d",
					rep, tc.wantMatMul, tc.wantGemm, tc.wantSkipped, tc.wantWeights, tc.wantKept, tc.wantOpset)
			}
			if rep.WeightRatio() < tc.minRatio {
				t.Errorf("weight bytes %d → %d (%.2fx), want at least %.1fx smaller",
					rep.WeightBytesBefore, rep.WeightBytesAfter, rep.WeightRatio(), tc.minRatio)
			}
			again, _, err := QuantizeDynamic(fp32)
			if err != nil || !bytes.Equal(again, int8Model) {
				t.Errorf("a second QuantizeDynamic gave different bytes (err %v)", err)
			}
			m, err := onnx.Parse(int8Model)
			if err != nil {
				t.Fatalf("quantised model does not parse: %v", err)
			}
			checkStructure(t, tc.model, m, rep, tc.wantDQL)

			in := randInput(99, int(product(tc.inputShape)))
			for _, optimize := range []bool{false, true} {
				want := onnxtest.RunFloat(t, fp32, true, "x", tc.inputShape, in, tc.outputs...)
				got := onnxtest.RunFloat(t, int8Model, optimize, "x", tc.inputShape, in, tc.outputs...)
				for i, name := range tc.outputs {
					e := relErr(want[i], got[i])
					t.Logf("optimize=%v output %s: relative error %.4f", optimize, name, e)
					if e > tc.maxRelErr {
						t.Errorf("optimize=%v output %s: relative error %.4f > %.4f", optimize, name, e, tc.maxRelErr)
					}
					if tc.classes > 0 {
						agree := argmaxAgreement(want[i], got[i], tc.classes)
						t.Logf("optimize=%v output %s: argmax agreement %.3f", optimize, name, agree)
						if agree < 0.95 {
							t.Errorf("optimize=%v output %s: argmax agreement %.3f < 0.95", optimize, name, agree)
						}
					}
				}
			}
			t.Logf("weights %d → %d bytes (%.2fx), model %d → %d bytes",
				rep.WeightBytesBefore, rep.WeightBytesAfter, rep.WeightRatio(), rep.ModelBytesBefore, rep.ModelBytesAfter)
		})
	}
}

// checkStructure asserts what every rewrite must keep: the graph's inputs and
// outputs, a valid topological order, unique node and value names, every
// MatMul/Gemm/Conv rewritten unless the report says why not, no constant left
// behind without a reader (float weights, reshaped biases, Constant nodes),
// and the opset the new ops need.
func checkStructure(t *testing.T, before, after *onnx.ModelProto, rep QuantizeReport, wantDQL int) {
	t.Helper()
	g := after.GetGraph()
	if onnx.OpsetVersion(after, "") < minQuantOpset {
		t.Errorf("opset %d < %d", onnx.OpsetVersion(after, ""), minQuantOpset)
	}
	names := func(vs []*onnx.ValueInfoProto) string {
		var s []string
		for _, v := range vs {
			s = append(s, v.GetName())
		}
		return strings.Join(s, ",")
	}
	if got, want := names(onnx.GraphInputs(g)), names(onnx.GraphInputs(before.GetGraph())); got != want {
		t.Errorf("graph inputs %s, want %s", got, want)
	}
	if got, want := names(g.GetOutput()), names(before.GetGraph().GetOutput()); got != want {
		t.Errorf("graph outputs %s, want %s", got, want)
	}
	skipped := map[string]bool{}
	for _, s := range rep.Skipped {
		skipped[s.Node] = true
	}
	defined := map[string]bool{"": true}
	for _, v := range g.GetInput() {
		defined[v.GetName()] = true
	}
	for _, init := range g.GetInitializer() {
		defined[init.GetName()] = true
	}
	nodeNames := map[string]bool{}
	dql := 0
	for i, n := range g.GetNode() {
		if n.GetName() != "" {
			if nodeNames[n.GetName()] {
				t.Errorf("node name %q used twice", n.GetName())
			}
			nodeNames[n.GetName()] = true
		}
		if n.GetOpType() == "DynamicQuantizeLinear" {
			dql++
		}
		if isCandidate(n) && !skipped[nodeName(n)] {
			t.Errorf("node %d %s %q was not rewritten", i, n.GetOpType(), n.GetName())
		}
		for _, in := range n.GetInput() {
			if !defined[in] {
				t.Errorf("node %d %s %q reads %q before it is defined", i, n.GetOpType(), n.GetName(), in)
			}
		}
		for _, out := range n.GetOutput() {
			if defined[out] {
				t.Errorf("node %d %s %q redefines %q", i, n.GetOpType(), n.GetName(), out)
			}
			defined[out] = true
		}
	}
	if dql != wantDQL {
		t.Errorf("%d DynamicQuantizeLinear nodes, want %d", dql, wantDQL)
	}
	// Integer MatMuls and Convs run u8u8 (exact on every x86 CPU; u8s8
	// saturates on AVX2 without VNNI): the weight is uint8 with zero point
	// 128.
	inits := onnx.Initializers(g)
	for _, n := range g.GetNode() {
		if op := n.GetOpType(); op != "MatMulInteger" && op != "ConvInteger" {
			continue
		}
		w, zp := inits[n.GetInput()[1]], inits[n.GetInput()[3]]
		if w == nil || zp == nil || onnx.DataType(w) != onnx.TensorProto_UINT8 || onnx.DataType(zp) != onnx.TensorProto_UINT8 || !bytes.Equal(zp.GetRawData(), []byte{128}) {
			t.Errorf("%s %q: weight %v zero point %v, want uint8 with zero point 128", n.GetOpType(), n.GetName(), w, zp)
		}
	}
	// Constants nobody reads: each must have been unread before too.
	readBefore, readAfter := readValues(before.GetGraph()), readValues(g)
	for _, c := range constantNames(g) {
		if !readAfter[c] && !readBefore[c] {
			continue
		}
		if !readAfter[c] {
			t.Errorf("constant %q is left behind with no reader", c)
		}
	}
}

// readValues returns the values some node (in subgraphs too) or a graph
// output reads.
func readValues(g *onnx.GraphProto) map[string]bool {
	read := map[string]bool{}
	var walk func(g *onnx.GraphProto)
	walk = func(g *onnx.GraphProto) {
		for _, n := range g.GetNode() {
			for _, in := range n.GetInput() {
				read[in] = true
			}
			for _, sg := range onnx.Subgraphs(n) {
				walk(sg)
			}
		}
		for _, o := range g.GetOutput() {
			read[o.GetName()] = true
		}
	}
	walk(g)
	return read
}

// constantNames lists a graph's initializers and Constant node outputs.
func constantNames(g *onnx.GraphProto) []string {
	var out []string
	for _, t := range g.GetInitializer() {
		out = append(out, t.GetName())
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Constant" {
			out = append(out, n.GetOutput()...)
		}
	}
	return out
}

func TestQuantizeDynamicRejects(t *testing.T) {
	w8 := onnx.NewFloatTensor("W", []int64{8, 8}, make([]float32, 64))
	tests := []struct {
		name       string
		model      func(t *testing.T) []byte
		wantErr    error
		wantReason string // substring of the single skip reason; "" = no skips
	}{
		{"not onnx bytes", func(*testing.T) []byte { return []byte("definitely not a model") }, onnx.ErrNotONNX, ""},
		{"empty", func(*testing.T) []byte { return nil }, onnx.ErrNotONNX, ""},
		{"no matmul, gemm or conv", func(t *testing.T) []byte {
			return marshalModel(t, singleNodeModel(onnx.NewNode("Relu", "relu", []string{"x"}, []string{"y"})))
		}, ErrNothingToQuantize, ""},
		{"gemm transA=1", func(t *testing.T) []byte {
			return marshalModel(t, singleNodeModel(onnx.NewNode("Gemm", "g", []string{"x", "W"}, []string{"y"}, onnx.IntAttr("transA", 1)), w8))
		}, ErrNothingToQuantize, "transA=1"},
		{"gemm beta with bias", func(t *testing.T) []byte {
			bias := onnx.NewFloatTensor("c", []int64{8}, make([]float32, 8))
			return marshalModel(t, singleNodeModel(onnx.NewNode("Gemm", "g", []string{"x", "W", "c"}, []string{"y"}, onnx.FloatAttr("beta", 2)), w8, bias))
		}, ErrNothingToQuantize, "beta=2"},
		{"weight computed by a node", func(t *testing.T) []byte {
			m := singleNodeModel(onnx.NewNode("MatMul", "mm", []string{"x", "W_relu"}, []string{"y"}), w8)
			m.Graph.Node = append([]*onnx.NodeProto{onnx.NewNode("Relu", "r", []string{"W"}, []string{"W_relu"})}, m.Graph.Node...)
			return marshalModel(t, m)
		}, ErrNothingToQuantize, "not a constant initializer"},
		{"weight is a graph input", func(t *testing.T) []byte {
			m := singleNodeModel(onnx.NewNode("MatMul", "mm", []string{"x", "W"}, []string{"y"}), w8)
			m.Graph.Input = append(m.Graph.Input, fvi("W", 8, 8))
			return marshalModel(t, m)
		}, ErrNothingToQuantize, "graph input"},
		{"weight of rank 3", func(t *testing.T) []byte {
			w := onnx.NewFloatTensor("W", []int64{1, 8, 8}, make([]float32, 64))
			return marshalModel(t, singleNodeModel(onnx.NewNode("MatMul", "mm", []string{"x", "W"}, []string{"y"}), w))
		}, ErrNothingToQuantize, "rank 3"},
		{"int8 weight", func(t *testing.T) []byte {
			w := onnx.NewInt8Tensor("W", []int64{8, 8}, make([]int8, 64))
			return marshalModel(t, singleNodeModel(onnx.NewNode("MatMul", "mm", []string{"x", "W"}, []string{"y"}), w))
		}, ErrNothingToQuantize, "want FLOAT"},
		{"non-finite weight", func(t *testing.T) []byte {
			vals := make([]float32, 64)
			vals[9] = float32(math.NaN())
			w := onnx.NewFloatTensor("W", []int64{8, 8}, vals)
			return marshalModel(t, singleNodeModel(onnx.NewNode("MatMul", "mm", []string{"x", "W"}, []string{"y"}), w))
		}, ErrNothingToQuantize, "NaN"},
		{"matmul in a custom domain", func(t *testing.T) []byte {
			n := onnx.NewNode("MatMul", "mm", []string{"x", "W"}, []string{"y"})
			n.Domain = "com.example"
			return marshalModel(t, singleNodeModel(n, w8))
		}, ErrNothingToQuantize, ""},
		{"matmul inside an If branch", func(t *testing.T) []byte {
			body := &onnx.GraphProto{Name: "then",
				Node:   []*onnx.NodeProto{onnx.NewNode("MatMul", "inner", []string{"x", "W"}, []string{"t"})},
				Output: []*onnx.ValueInfoProto{fvi("t", -1, 8)}}
			n := onnx.NewNode("If", "if", []string{"cond"}, []string{"y"},
				&onnx.AttributeProto{Name: "then_branch", Type: onnx.AttributeProto_GRAPH, G: body},
				&onnx.AttributeProto{Name: "else_branch", Type: onnx.AttributeProto_GRAPH, G: &onnx.GraphProto{Name: "else",
					Node:   []*onnx.NodeProto{onnx.NewNode("Identity", "id", []string{"x"}, []string{"e"})},
					Output: []*onnx.ValueInfoProto{fvi("e", -1, 8)}}})
			return marshalModel(t, singleNodeModel(n, w8))
		}, ErrNothingToQuantize, "subgraph"},
		{"already quantised", func(t *testing.T) []byte {
			q, _, err := QuantizeDynamic(marshalModel(t, mlpModel(1, 16, 16, 4)))
			if err != nil {
				t.Fatal(err)
			}
			return q
		}, ErrNothingToQuantize, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := QuantizeDynamic(tc.model(t))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if out != nil {
				t.Errorf("got %d bytes of model with an error", len(out))
			}
			if rep.Quantized() != 0 {
				t.Errorf("report says %d nodes quantised", rep.Quantized())
			}
			if tc.wantReason == "" {
				if len(rep.Skipped) != 0 {
					t.Errorf("skipped = %+v, want none", rep.Skipped)
				}
				return
			}
			if len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Reason, tc.wantReason) {
				t.Fatalf("skipped = %+v, want one reason containing %q", rep.Skipped, tc.wantReason)
			}
			if !strings.Contains(err.Error(), tc.wantReason) {
				t.Errorf("error %q does not say why (%q)", err, tc.wantReason)
			}
		})
	}
}

// The model zoo's MNIST MLPs (trained by zoo/train.py; exported by torch as
// Flatten + Gemm(transB=1) + Relu ...) must keep their top-1 accuracy on the
// 1000 validation images within 1.5 points after quantisation.
func TestQuantizeZooMNIST(t *testing.T) {
	root := onnxtest.RepoRoot(t)
	dims, pixels := onnxtest.ReadIDX(t, filepath.Join(root, "zoo", "data", "mnist", "inputs.idx"))
	_, labels := onnxtest.ReadIDX(t, filepath.Join(root, "zoo", "data", "mnist", "labels.idx"))
	if len(dims) != 3 || dims[1] != 28 || dims[2] != 28 || dims[0] != len(labels) {
		t.Fatalf("inputs dims %v do not match %d labels of 28×28 images", dims, len(labels))
	}
	n := dims[0]
	images := make([]float32, len(pixels))
	for i, p := range pixels {
		images[i] = float32(p) / 255
	}
	shape := []int64{int64(n), 1, 28, 28}

	for _, name := range []string{"mnist-mlp-s.onnx", "mnist-mlp-m.onnx", "mnist-mlp-l.onnx"} {
		t.Run(name, func(t *testing.T) {
			fp32 := readZooModel(t, name)
			q, rep, err := QuantizeDynamic(fp32)
			if err != nil {
				t.Fatalf("QuantizeDynamic: %v", err)
			}
			if rep.Gemm+rep.MatMul == 0 || len(rep.Skipped) != 0 {
				t.Fatalf("report %+v: want every layer quantised", rep)
			}
			want := onnxtest.RunFloat(t, fp32, true, "input", shape, images, "logits")[0]
			got := onnxtest.RunFloat(t, q, true, "input", shape, images, "logits")[0]
			accF, accQ := accuracy(want, labels), accuracy(got, labels)
			t.Logf("%s: top-1 fp32 %.1f%%, int8 %.1f%% (agreement %.1f%%); weights %d → %d bytes (%.2fx); file %d → %d bytes",
				name, 100*accF, 100*accQ, 100*argmaxAgreement(want, got, 10),
				rep.WeightBytesBefore, rep.WeightBytesAfter, rep.WeightRatio(), rep.ModelBytesBefore, rep.ModelBytesAfter)
			if math.Abs(accF-accQ) > 0.015 {
				t.Errorf("int8 top-1 %.1f%% is more than 1.5 points from fp32 %.1f%%", 100*accQ, 100*accF)
			}
			if rep.WeightRatio() < 3.5 {
				t.Errorf("weights only %.2fx smaller", rep.WeightRatio())
			}
		})
	}
}

func TestSymmetricPerColumn(t *testing.T) {
	tests := []struct {
		name       string
		w          []float32
		k, n       int
		wantQ      []int8
		wantScales []float32
		wantErr    bool
	}{
		{"max maps to 127", []float32{1, -2, -0.5, 1}, 2, 2, []int8{127, -127, -64, 64}, []float32{1.0 / 127, 2.0 / 127}, false},
		{"zero column", []float32{0, 3, 0, -3}, 2, 2, []int8{0, 127, 0, -127}, []float32{1, 3.0 / 127}, false},
		{"round half to even", []float32{127, 0.5, 1.5, 2.5}, 4, 1, []int8{127, 0, 2, 2}, []float32{1}, false},
		{"infinite", []float32{float32(math.Inf(-1))}, 1, 1, nil, nil, true},
		{"wrong size", []float32{1, 2, 3}, 2, 2, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, s, err := symmetricPerColumn(tc.w, tc.k, tc.n)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if fmt.Sprint(q) != fmt.Sprint(tc.wantQ) || fmt.Sprint(s) != fmt.Sprint(tc.wantScales) {
				t.Fatalf("got q=%v scales=%v, want q=%v scales=%v", q, s, tc.wantQ, tc.wantScales)
			}
		})
	}
	if got := transpose([]float32{1, 2, 3, 4, 5, 6}, 2, 3); fmt.Sprint(got) != "[1 4 2 5 3 6]" {
		t.Errorf("transpose = %v", got)
	}
}

func readZooModel(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join(onnxtest.RepoRoot(t), "zoo", "models", name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("model zoo file missing (build it with zoo/train.py, see zoo/README.md): %v", err)
	}
	return b
}

func product(dims []int64) int64 {
	p := int64(1)
	for _, d := range dims {
		p *= d
	}
	return p
}

// relErr is ||got - want|| / ||want|| (L2).
func relErr(want, got []float32) float64 {
	if len(want) != len(got) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

func argmax(row []float32) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}

// argmaxAgreement is the fraction of rows (of width classes) where a and b
// pick the same class.
func argmaxAgreement(a, b []float32, classes int) float64 {
	rows := len(a) / classes
	same := 0
	for r := 0; r < rows; r++ {
		if argmax(a[r*classes:(r+1)*classes]) == argmax(b[r*classes:(r+1)*classes]) {
			same++
		}
	}
	return float64(same) / float64(rows)
}

func accuracy(logits []float32, labels []byte) float64 {
	right := 0
	for i, l := range labels {
		if argmax(logits[i*10:(i+1)*10]) == int(l) {
			right++
		}
	}
	return float64(right) / float64(len(labels))
}
