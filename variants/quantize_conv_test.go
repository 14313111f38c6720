package variants

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infaas/infaas/onnx"
	"github.com/infaas/infaas/onnx/onnxtest"
	ort "github.com/yalue/onnxruntime_go"
)

func TestQuantizeConvMatchesFloat(t *testing.T) {
	tests := []struct {
		name       string
		model      *onnx.ModelProto
		inputShape []int64
		outputs    []string

		wantConv, wantMatMul, wantGemm, wantWeights, wantKept int
		wantDQL, wantReshape, wantConstant                    int
		wantOpset                                             int64
		minRatio                                              float64 // weight bytes before/after
		maxRelErr                                             float64
	}{
		{
			name: "conv bias pads strides relu conv dilations", model: convReluConvModel(1),
			inputShape: []int64{4, 3, 16, 16}, outputs: []string{"y"},
			wantConv: 2, wantWeights: 2, wantDQL: 2, wantOpset: 13, minRatio: 3.5, maxRelErr: 0.03,
		},
		{
			name: "group 2, no bias, auto_pad SAME_UPPER", model: groupedConvModel(2),
			inputShape: []int64{3, 8, 12, 12}, outputs: []string{"y"},
			wantConv: 1, wantWeights: 1, wantDQL: 1, wantOpset: 13, minRatio: 3.5, maxRelErr: 0.03,
		},
		{
			name: "depthwise, weight and bias in Constant nodes", model: depthwiseConvModel(3),
			inputShape: []int64{2, 6, 10, 10}, outputs: []string{"y"},
			// 54 weights: 216 bytes → 54 + 6×4 scale + 1 zero point.
			wantConv: 1, wantWeights: 1, wantDQL: 1, wantOpset: 13, minRatio: 2.7, maxRelErr: 0.03,
		},
		{
			name: "Constant weights for Conv, Gemm and MatMul", model: constantWeightsModel(4),
			inputShape: []int64{5, 4, 8, 8}, outputs: []string{"y"},
			// The Gemm's bias stays a Constant node: its Add reads it.
			wantConv: 1, wantGemm: 1, wantMatMul: 1, wantWeights: 3, wantDQL: 3, wantConstant: 1, wantOpset: 13, minRatio: 3.5, maxRelErr: 0.04,
		},
		{
			name: "1-D conv, auto_pad VALID, computed bias", model: conv1dModel(5),
			inputShape: []int64{3, 4, 20}, outputs: []string{"y"},
			wantConv: 1, wantWeights: 1, wantDQL: 1, wantReshape: 1, wantOpset: 13, minRatio: 3, maxRelErr: 0.03,
		},
		{
			name: "shared input, weight and bias; float weight kept", model: sharedConvModel(6),
			inputShape: []int64{2, 3, 9, 9}, outputs: []string{"y", "z", "u", "r"},
			wantConv: 3, wantWeights: 1, wantKept: 1, wantDQL: 1, wantOpset: 13, minRatio: 3, maxRelErr: 0.03,
		},
		{
			name: "ir 3 opset 9 raised to 11", model: ir3ConvModel(7),
			inputShape: []int64{2, 3, 16, 16}, outputs: []string{"y"},
			wantConv: 2, wantWeights: 2, wantDQL: 2, wantOpset: 11, minRatio: 3.5, maxRelErr: 0.03,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fp32 := marshalModel(t, tc.model)
			int8Model, rep, err := QuantizeDynamic(fp32)
			if err != nil {
				t.Fatalf("QuantizeDynamic: %v", err)
			}
			if rep.Conv != tc.wantConv || rep.MatMul != tc.wantMatMul || rep.Gemm != tc.wantGemm || len(rep.Skipped) != 0 ||
				rep.Weights != tc.wantWeights || rep.FloatWeightsKept != tc.wantKept || rep.OpsetAfter != tc.wantOpset {
				t.Fatalf("report = %+v\nwant Conv=%d MatMul=%d Gemm=%d no skips weights=%d kept=%d opset=%d",
					rep, tc.wantConv, tc.wantMatMul, tc.wantGemm, tc.wantWeights, tc.wantKept, tc.wantOpset)
			}
			if rep.Quantized() != tc.wantConv+tc.wantMatMul+tc.wantGemm {
				t.Errorf("Quantized() = %d, want %d", rep.Quantized(), tc.wantConv+tc.wantMatMul+tc.wantGemm)
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
			ops := opCounts(m.GetGraph())
			if ops["ConvInteger"] != tc.wantConv || ops["Reshape"] != tc.wantReshape || ops["Constant"] != tc.wantConstant {
				t.Errorf("ops %v: want %d ConvInteger, %d Reshape, %d Constant", ops, tc.wantConv, tc.wantReshape, tc.wantConstant)
			}

			in := randInput(99, int(product(tc.inputShape)))
			want := onnxtest.RunFloat(t, fp32, true, "x", tc.inputShape, in, tc.outputs...)
			for _, optimize := range []bool{false, true} {
				got := onnxtest.RunFloat(t, int8Model, optimize, "x", tc.inputShape, in, tc.outputs...)
				for i, name := range tc.outputs {
					e := relErr(want[i], got[i])
					t.Logf("optimize=%v output %s: relative error %.4f", optimize, name, e)
					if e > tc.maxRelErr {
						t.Errorf("optimize=%v output %s: relative error %.4f > %.4f", optimize, name, e, tc.maxRelErr)
					}
				}
			}
			t.Logf("weights %d → %d bytes (%.2fx), model %d → %d bytes",
				rep.WeightBytesBefore, rep.WeightBytesAfter, rep.WeightRatio(), rep.ModelBytesBefore, rep.ModelBytesAfter)
		})
	}
}

func opCounts(g *onnx.GraphProto) map[string]int {
	ops := map[string]int{}
	for _, n := range g.GetNode() {
		ops[n.GetOpType()]++
	}
	return ops
}

func TestQuantizeConvSkips(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	w := convWeight(r, "W", 8, 4, 3, 3)
	conv := func(inputs []string, attrs ...*onnx.AttributeProto) *onnx.NodeProto {
		return onnx.NewNode("Conv", "c", inputs, []string{"y"}, attrs...)
	}
	xw := []string{"x", "W"}
	tests := []struct {
		name       string
		model      func() *onnx.ModelProto
		wantReason string
	}{
		{"weight is a graph input", func() *onnx.ModelProto {
			m := singleConvModel(conv(xw), w)
			m.Graph.Input = append(m.Graph.Input, fvi("W", 8, 4, 3, 3))
			return m
		}, "graph input"},
		{"weight computed by a node", func() *onnx.ModelProto {
			m := singleConvModel(conv([]string{"x", "W_relu"}), w)
			m.Graph.Node = append([]*onnx.NodeProto{onnx.NewNode("Relu", "r", []string{"W"}, []string{"W_relu"})}, m.Graph.Node...)
			return m
		}, "not a constant initializer or Constant node"},
		{"weight of rank 2", func() *onnx.ModelProto {
			return singleConvModel(conv(xw), onnx.NewFloatTensor("W", []int64{8, 36}, make([]float32, 288)))
		}, "rank 2, want at least 3"},
		{"float16 weight", func() *onnx.ModelProto {
			w16 := &onnx.TensorProto{Name: "W", Dims: []int64{8, 4, 3, 3}, DataType: int32(onnx.TensorProto_FLOAT16), RawData: make([]byte, 576)}
			return singleConvModel(conv(xw), w16)
		}, "want FLOAT"},
		{"empty weight", func() *onnx.ModelProto {
			return singleConvModel(conv(xw), onnx.NewFloatTensor("W", []int64{0, 4, 3, 3}, nil))
		}, "empty"},
		{"weight data shorter than its dims", func() *onnx.ModelProto {
			short := onnx.NewFloatTensor("W", []int64{8, 4, 3, 3}, make([]float32, 288))
			short.RawData = short.RawData[:100]
			return singleConvModel(conv(xw), short)
		}, "raw bytes"},
		{"non-finite weight", func() *onnx.ModelProto {
			vals := make([]float32, 288)
			vals[17] = float32(math.Inf(1))
			return singleConvModel(conv(xw), onnx.NewFloatTensor("W", []int64{8, 4, 3, 3}, vals))
		}, "+Inf"},
		{"group does not divide the channels", func() *onnx.ModelProto {
			return singleConvModel(conv(xw, onnx.IntAttr("group", 3)), w)
		}, "group=3"},
		{"group 0", func() *onnx.ModelProto { return singleConvModel(conv(xw, onnx.IntAttr("group", 0)), w) }, "group=0"},
		{"group as a float", func() *onnx.ModelProto { return singleConvModel(conv(xw, onnx.FloatAttr("group", 1)), w) }, "want INT"},
		{"kernel_shape not the weight's", func() *onnx.ModelProto {
			return singleConvModel(conv(xw, onnx.IntsAttr("kernel_shape", 5, 5)), w)
		}, "kernel_shape [5 5]"},
		{"pads of the wrong length", func() *onnx.ModelProto {
			return singleConvModel(conv(xw, onnx.IntsAttr("pads", 1, 1)), w)
		}, "pads has 2 values, want 4"},
		{"negative pads", func() *onnx.ModelProto {
			return singleConvModel(conv(xw, onnx.IntsAttr("pads", 1, -1, 1, 1)), w)
		}, "below 0"},
		{"strides 0", func() *onnx.ModelProto { return singleConvModel(conv(xw, onnx.IntsAttr("strides", 0, 1)), w) }, "below 1"},
		{"dilations as an int", func() *onnx.ModelProto { return singleConvModel(conv(xw, onnx.IntAttr("dilations", 1)), w) }, "want INTS"},
		{"unknown auto_pad", func() *onnx.ModelProto {
			return singleConvModel(conv(xw, onnx.StringAttr("auto_pad", "SAME")), w)
		}, `auto_pad "SAME"`},
		{"unknown attribute", func() *onnx.ModelProto {
			return singleConvModel(conv(xw, onnx.IntAttr("channels_last", 1)), w)
		}, "not a Conv attribute"},
		{"attribute given twice", func() *onnx.ModelProto {
			return singleConvModel(conv(xw, onnx.IntAttr("group", 1), onnx.IntAttr("group", 1)), w)
		}, "twice"},
		{"bias of the wrong length", func() *onnx.ModelProto {
			return singleConvModel(conv([]string{"x", "W", "b"}), w, onnx.NewFloatTensor("b", []int64{4}, make([]float32, 4)))
		}, "want FLOAT [8]"},
		{"int64 bias", func() *onnx.ModelProto {
			return singleConvModel(conv([]string{"x", "W", "b"}), w, onnx.NewInt64Tensor("b", []int64{8}, make([]int64, 8)))
		}, "want FLOAT [8]"},
		{"one input", func() *onnx.ModelProto { return singleConvModel(conv([]string{"x"}), w) }, "has 1 inputs"},
		{"four inputs", func() *onnx.ModelProto {
			return singleConvModel(conv([]string{"x", "W", "b", "z"}), w)
		}, "has 4 inputs"},
		{"empty weight name", func() *onnx.ModelProto { return singleConvModel(conv([]string{"x", ""}), w) }, "empty input"},
		{"Constant weight given as value_floats", func() *onnx.ModelProto {
			m := singleConvModel(conv(xw))
			m.Graph.Node = append([]*onnx.NodeProto{onnx.NewNode("Constant", "k", nil, []string{"W"},
				&onnx.AttributeProto{Name: "value_floats", Type: onnx.AttributeProto_FLOATS, Floats: make([]float32, 288)})}, m.Graph.Node...)
			return m
		}, "without a single tensor value"},
		{"Constant weight stored externally", func() *onnx.ModelProto {
			ext := &onnx.TensorProto{Name: "W", Dims: []int64{8, 4, 3, 3}, DataType: int32(onnx.TensorProto_FLOAT),
				DataLocation: onnx.TensorProto_EXTERNAL.Enum()}
			m := singleConvModel(conv(xw))
			m.Graph.Node = append([]*onnx.NodeProto{constantNode(ext)}, m.Graph.Node...)
			return m
		}, "externally"},
		{"Constant MatMul weight of rank 3", func() *onnx.ModelProto {
			m := singleNodeModel(onnx.NewNode("MatMul", "mm", []string{"x", "W"}, []string{"y"}))
			m.Graph.Node = append([]*onnx.NodeProto{constantNode(onnx.NewFloatTensor("W", []int64{1, 8, 8}, make([]float32, 64)))}, m.Graph.Node...)
			return m
		}, "rank 3, want 2"},
		{"conv inside a Loop body", func() *onnx.ModelProto {
			body := &onnx.GraphProto{Name: "body",
				Node:   []*onnx.NodeProto{onnx.NewNode("Conv", "inner", xw, []string{"t"})},
				Output: []*onnx.ValueInfoProto{fvi("t", -1, 8, 6, 6)}}
			n := onnx.NewNode("Loop", "loop", []string{"trip", "cond"}, []string{"y"},
				&onnx.AttributeProto{Name: "body", Type: onnx.AttributeProto_GRAPH, G: body})
			return singleConvModel(n, w)
		}, "subgraph"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := QuantizeDynamic(marshalModel(t, tc.model()))
			if !errors.Is(err, ErrNothingToQuantize) {
				t.Fatalf("err = %v, want %v", err, ErrNothingToQuantize)
			}
			if out != nil || rep.Quantized() != 0 {
				t.Errorf("got %d bytes and %d nodes quantised with an error", len(out), rep.Quantized())
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

// TestQuantizeMalformedNoPanic: models broken in ways the parser accepts
// (dangling names, wrong arities, nonsense attributes and tensors) and
// corrupted bytes give a model that parses, or an error; never a panic.
func TestQuantizeMalformedNoPanic(t *testing.T) {
	var seeds [][]byte
	for _, m := range []*onnx.ModelProto{convReluConvModel(1), constantWeightsModel(2), depthwiseConvModel(3), conv1dModel(4)} {
		seeds = append(seeds, marshalModel(t, m))
	}
	seeds = append(seeds, readZooModel(t, "mnist-cnn-s.onnx"), readZooModel(t, "mnist-8.onnx"))

	r := rand.New(rand.NewSource(42))
	mutations := []func(m *onnx.ModelProto){
		func(m *onnx.ModelProto) { // drop a node input or output
			n := m.Graph.Node[r.Intn(len(m.Graph.Node))]
			if len(n.Input) > 0 && r.Intn(2) == 0 {
				n.Input = n.Input[:r.Intn(len(n.Input))]
			} else if len(n.Output) > 0 {
				n.Output = n.Output[:r.Intn(len(n.Output))]
			}
		},
		func(m *onnx.ModelProto) { // scramble a tensor's dims or data
			var ts []*onnx.TensorProto
			ts = append(ts, m.Graph.Initializer...)
			for _, n := range m.Graph.Node {
				for _, a := range n.Attribute {
					if a.T != nil {
						ts = append(ts, a.T)
					}
				}
			}
			if len(ts) == 0 {
				return
			}
			tp := ts[r.Intn(len(ts))]
			switch r.Intn(5) {
			case 0:
				tp.Dims = append(tp.Dims, int64(r.Intn(5)-1))
			case 1:
				if len(tp.Dims) > 0 {
					tp.Dims[r.Intn(len(tp.Dims))] = int64(r.Intn(1<<20) - 2)
				}
			case 2:
				tp.RawData = tp.RawData[:r.Intn(len(tp.RawData)+1)]
			case 3:
				tp.DataType = int32(r.Intn(20))
			case 4:
				tp.Dims = nil
			}
		},
		func(m *onnx.ModelProto) { // replace a Conv attribute by nonsense
			for _, n := range m.Graph.Node {
				for _, a := range n.Attribute {
					if r.Intn(2) == 0 {
						a.Ints = []int64{int64(r.Intn(7) - 3)}
						a.I = nil
						a.S = []byte("?")
						a.Type = onnx.AttributeProto_AttributeType(r.Intn(12))
					}
				}
			}
		},
		func(m *onnx.ModelProto) { // rename a value so that something dangles or collides
			n := m.Graph.Node[r.Intn(len(m.Graph.Node))]
			if len(n.Input) > 0 {
				n.Input[r.Intn(len(n.Input))] = m.Graph.Node[r.Intn(len(m.Graph.Node))].GetName()
			}
		},
		func(m *onnx.ModelProto) { // duplicate a node
			n := m.Graph.Node[r.Intn(len(m.Graph.Node))]
			m.Graph.Node = append(m.Graph.Node, n)
		},
		func(m *onnx.ModelProto) { // drop the graph
			if r.Intn(8) == 0 {
				m.Graph = nil
			}
		},
	}
	quantize := func(b []byte) (out []byte, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
				t.Errorf("QuantizeDynamic panicked: %v", p)
			}
		}()
		out, _, err = QuantizeDynamic(b)
		return out, err
	}
	quantised, refused := 0, 0
	for i := 0; i < 600; i++ {
		seed := seeds[i%len(seeds)]
		var b []byte
		if i%3 == 0 { // flip bytes
			b = append([]byte(nil), seed...)
			for k := 0; k < 1+r.Intn(4); k++ {
				b[r.Intn(len(b))] ^= byte(1 + r.Intn(255))
			}
		} else {
			m, err := onnx.Parse(seed)
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 1+r.Intn(3); k++ {
				if m.Graph == nil || len(m.Graph.Node) == 0 {
					break
				}
				mutations[r.Intn(len(mutations))](m)
			}
			if b, err = onnx.Marshal(m); err != nil {
				continue
			}
		}
		out, err := quantize(b)
		if err != nil {
			refused++
			continue
		}
		quantised++
		if _, perr := onnx.Parse(out); perr != nil {
			t.Errorf("case %d: the quantised model does not parse: %v", i, perr)
		}
	}
	t.Logf("%d broken models quantised, %d refused", quantised, refused)
	if quantised == 0 || refused == 0 {
		t.Errorf("the mutations should leave some models quantisable and break others")
	}
}

// The zoo's convolutional MNIST models: on the first 500 validation images
// the int8 model's top-1 class must agree with the float model's on at least
// 98% of them, and its file must be smaller.
func TestQuantizeZooCNN(t *testing.T) {
	const samples = 500
	root := onnxtest.RepoRoot(t)
	dims, pixels := onnxtest.ReadIDX(t, filepath.Join(root, "zoo", "data", "mnist", "inputs.idx"))
	_, labels := onnxtest.ReadIDX(t, filepath.Join(root, "zoo", "data", "mnist", "labels.idx"))
	if len(dims) != 3 || dims[1] != 28 || dims[2] != 28 || dims[0] < samples || len(labels) < samples {
		t.Fatalf("inputs dims %v, %d labels: want at least %d 28×28 images", dims, len(labels), samples)
	}
	labels = labels[:samples]
	tests := []struct {
		file          string
		input, output string
		scale         float32 // pixel → input
		batch         int64   // the model's batch size: mnist-8 takes one image
		wantConv      int
		wantGemm      int
		wantSkipped   string // reason of the one skipped node, if any
	}{
		{"mnist-cnn-s.onnx", "input", "logits", 1.0 / 255, samples, 1, 1, ""},
		{"mnist-cnn-m.onnx", "input", "logits", 1.0 / 255, samples, 2, 2, ""},
		// mnist-8's MatMul weight is Reshape(initializer) at run time.
		{"mnist-8.onnx", "Input3", "Plus214_Output_0", 1, 1, 2, 0, "not a constant initializer"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			images := make([]float32, samples*784)
			for i := range images {
				images[i] = float32(pixels[i]) * tc.scale
			}
			fp32 := readZooModel(t, tc.file)
			q, rep, err := QuantizeDynamic(fp32)
			if err != nil {
				t.Fatalf("QuantizeDynamic: %v", err)
			}
			if rep.Conv != tc.wantConv || rep.Gemm != tc.wantGemm {
				t.Errorf("report %+v: want %d Conv and %d Gemm quantised", rep, tc.wantConv, tc.wantGemm)
			}
			switch {
			case tc.wantSkipped == "" && len(rep.Skipped) != 0:
				t.Errorf("skipped %+v, want none", rep.Skipped)
			case tc.wantSkipped != "" && (len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Reason, tc.wantSkipped)):
				t.Errorf("skipped %+v, want one because %q", rep.Skipped, tc.wantSkipped)
			}
			want := runClassifier(t, fp32, tc.input, tc.output, images, tc.batch)
			got := runClassifier(t, q, tc.input, tc.output, images, tc.batch)
			agree := argmaxAgreement(want, got, 10)
			t.Logf("%s: top-1 agreement %.1f%% over %d images (accuracy fp32 %.1f%%, int8 %.1f%%, relative error of the logits %.4f); "+
				"%d Conv + %d Gemm + %d MatMul quantised; weights %d → %d bytes (%.2fx); file %d → %d bytes (%.1f%%)",
				tc.file, 100*agree, samples, 100*accuracy(want, labels), 100*accuracy(got, labels), relErr(want, got),
				rep.Conv, rep.Gemm, rep.MatMul, rep.WeightBytesBefore, rep.WeightBytesAfter, rep.WeightRatio(),
				rep.ModelBytesBefore, rep.ModelBytesAfter, 100*float64(rep.ModelBytesAfter)/float64(rep.ModelBytesBefore))
			if agree < 0.98 {
				t.Errorf("int8 top-1 agrees with fp32 on %.1f%% of %d images, want at least 98%%", 100*agree, samples)
			}
			if rep.ModelBytesAfter >= rep.ModelBytesBefore || len(q) != rep.ModelBytesAfter || len(fp32) != rep.ModelBytesBefore {
				t.Errorf("file %d → %d bytes (report %d → %d), want smaller", len(fp32), len(q), rep.ModelBytesBefore, rep.ModelBytesAfter)
			}
		})
	}
}

// runClassifier runs a model with one float input of images [n, 1, 28, 28]
// in batches of batch on the CPU (graph optimisations on), and returns the
// [n, classes] scores.
func runClassifier(t *testing.T, model []byte, input, output string, images []float32, batch int64) []float32 {
	t.Helper()
	onnxtest.InitORT(t)
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{input}, []string{output}, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime refused the model: %v", err)
	}
	defer sess.Destroy()
	const image = 784
	var scores []float32
	for start := 0; start < len(images); start += int(batch) * image {
		in, err := ort.NewTensor(ort.NewShape(batch, 1, 28, 28), images[start:start+int(batch)*image])
		if err != nil {
			t.Fatal(err)
		}
		outs := []ort.Value{nil}
		err = sess.Run([]ort.Value{in}, outs)
		in.Destroy()
		if err != nil {
			t.Fatalf("ONNX Runtime run: %v", err)
		}
		ft, ok := outs[0].(*ort.Tensor[float32])
		if !ok {
			t.Fatalf("output %s is %T, want a float32 tensor", output, outs[0])
		}
		scores = append(scores, ft.GetData()...)
		outs[0].Destroy()
	}
	if len(scores) != len(images)/image*10 {
		t.Fatalf("%d scores for %d images, want 10 each", len(scores), len(images)/image)
	}
	return scores
}

func TestSymmetricPerRow(t *testing.T) {
	tests := []struct {
		name       string
		w          []float32
		m, k       int
		wantQ      []int8
		wantScales []float32
		wantErr    bool
	}{
		{"max maps to 127", []float32{1, -0.5, -2, 1}, 2, 2, []int8{127, -64, -127, 64}, []float32{1.0 / 127, 2.0 / 127}, false},
		{"zero row", []float32{0, 0, 3, -3}, 2, 2, []int8{0, 0, 127, -127}, []float32{1, 3.0 / 127}, false},
		{"round half to even", []float32{127, 0.5, 1.5, 2.5}, 1, 4, []int8{127, 0, 2, 2}, []float32{1}, false},
		{"NaN", []float32{1, float32(math.NaN())}, 1, 2, nil, nil, true},
		{"wrong size", []float32{1, 2, 3}, 2, 2, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, s, err := symmetricPerRow(tc.w, tc.m, tc.k)
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
}
