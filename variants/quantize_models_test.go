package variants

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/infaas/infaas/onnx"
)

// Small float32 models built in Go for the quantisation tests. Weights are
// drawn from a seeded source, scaled by 1/sqrt(fan-in) like a trained layer.

func randMatrix(r *rand.Rand, rows, cols, fanIn int) []float32 {
	out := make([]float32, rows*cols)
	s := 1 / math.Sqrt(float64(fanIn))
	for i := range out {
		out[i] = float32(r.NormFloat64() * s)
	}
	return out
}

func randInput(seed int64, n int) []float32 {
	r := rand.New(rand.NewSource(seed))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

func newModel(opset int64, nodes []*onnx.NodeProto, inits []*onnx.TensorProto, inputs, outputs []*onnx.ValueInfoProto) *onnx.ModelProto {
	return &onnx.ModelProto{
		IrVersion:    8,
		ProducerName: "infaas-test",
		OpsetImport:  []*onnx.OperatorSetIdProto{{Version: opset}},
		Graph: &onnx.GraphProto{
			Name:        "test",
			Node:        nodes,
			Initializer: inits,
			Input:       inputs,
			Output:      outputs,
		},
	}
}

func marshalModel(t testing.TB, m *onnx.ModelProto) []byte {
	t.Helper()
	b, err := onnx.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fvi(name string, shape ...int64) *onnx.ValueInfoProto {
	return onnx.NewValueInfo(name, onnx.TensorProto_FLOAT, shape)
}

// mlpModel is a torch-style nn.Linear MLP: x [N, in] → Gemm(transB=1) → Relu
// → Gemm(transB=1) → logits [N, out]; weights are stored [out, in].
func mlpModel(seed int64, in, hidden, out int) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	return newModel(13,
		[]*onnx.NodeProto{
			onnx.NewNode("Gemm", "fc1", []string{"x", "fc1.weight", "fc1.bias"}, []string{"h"},
				onnx.FloatAttr("alpha", 1), onnx.FloatAttr("beta", 1), onnx.IntAttr("transB", 1)),
			onnx.NewNode("Relu", "relu", []string{"h"}, []string{"h_relu"}),
			onnx.NewNode("Gemm", "fc2", []string{"h_relu", "fc2.weight", "fc2.bias"}, []string{"logits"},
				onnx.IntAttr("transB", 1)),
		},
		[]*onnx.TensorProto{
			onnx.NewFloatTensor("fc1.weight", []int64{int64(hidden), int64(in)}, randMatrix(r, hidden, in, in)),
			onnx.NewFloatTensor("fc1.bias", []int64{int64(hidden)}, randMatrix(r, 1, hidden, in)),
			onnx.NewFloatTensor("fc2.weight", []int64{int64(out), int64(hidden)}, randMatrix(r, out, hidden, hidden)),
			onnx.NewFloatTensor("fc2.bias", []int64{int64(out)}, randMatrix(r, 1, out, hidden)),
		},
		[]*onnx.ValueInfoProto{fvi("x", -1, int64(in))},
		[]*onnx.ValueInfoProto{fvi("logits", -1, int64(out))},
	)
}

// matmulAddModel is x [N, seq, k] → MatMul(W [k, n]) → Add(b [n]) → y: a
// rank-3 activation, as in a transformer projection.
func matmulAddModel(seed int64, opset int64, seq, k, n int) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	return newModel(opset,
		[]*onnx.NodeProto{
			onnx.NewNode("MatMul", "proj", []string{"x", "W"}, []string{"xw"}),
			onnx.NewNode("Add", "bias", []string{"xw", "b"}, []string{"y"}),
		},
		[]*onnx.TensorProto{
			onnx.NewFloatTensor("W", []int64{int64(k), int64(n)}, randMatrix(r, k, n, k)),
			onnx.NewFloatTensor("b", []int64{int64(n)}, randMatrix(r, 1, n, k)),
		},
		[]*onnx.ValueInfoProto{fvi("x", -1, int64(seq), int64(k))},
		[]*onnx.ValueInfoProto{fvi("y", -1, int64(seq), int64(n))},
	)
}

// sharedModel reuses one activation and one weight across several nodes:
//
//	y = MatMul(x, W) + MatMul(x, V)
//	z = Gemm(x, W, transB=1, alpha=0.5)        (W used transposed too)
//	u = Gemm(x, U, c, beta=0.5)                 (skipped: beta ≠ 1 with bias)
//	r = Relu(W)                                  (keeps float W alive)
func sharedModel(seed int64, d int) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	dd := []int64{int64(d), int64(d)}
	return newModel(17,
		[]*onnx.NodeProto{
			onnx.NewNode("MatMul", "", []string{"x", "W"}, []string{"xw"}),
			onnx.NewNode("MatMul", "", []string{"x", "V"}, []string{"xv"}),
			onnx.NewNode("Add", "sum", []string{"xw", "xv"}, []string{"y"}),
			onnx.NewNode("Gemm", "gemm_t", []string{"x", "W"}, []string{"z"},
				onnx.IntAttr("transB", 1), onnx.FloatAttr("alpha", 0.5)),
			onnx.NewNode("Gemm", "gemm_beta", []string{"x", "U", "c"}, []string{"u"}, onnx.FloatAttr("beta", 0.5)),
			onnx.NewNode("Relu", "relu_w", []string{"W"}, []string{"r"}),
		},
		[]*onnx.TensorProto{
			onnx.NewFloatTensor("W", dd, randMatrix(r, d, d, d)),
			onnx.NewFloatTensor("V", dd, randMatrix(r, d, d, d)),
			onnx.NewFloatTensor("U", dd, randMatrix(r, d, d, d)),
			onnx.NewFloatTensor("c", []int64{int64(d)}, randMatrix(r, 1, d, d)),
		},
		[]*onnx.ValueInfoProto{fvi("x", -1, int64(d))},
		[]*onnx.ValueInfoProto{fvi("y", -1, int64(d)), fvi("z", -1, int64(d)), fvi("u", -1, int64(d)), fvi("r", dd...)},
	)
}

// ir3Model is matmulAddModel written the IR version 3 way: old opset, and
// every initializer also listed as a graph input.
func ir3Model(seed int64, k, n int) *onnx.ModelProto {
	m := matmulAddModel(seed, 9, 1, k, n)
	m.IrVersion = 3
	for _, t := range m.Graph.Initializer {
		m.Graph.Input = append(m.Graph.Input, onnx.NewValueInfo(t.GetName(), onnx.DataType(t), t.GetDims()))
	}
	return m
}

// singleNodeModel wraps one node reading x [N, 8] and writing y; used for the
// bad-input cases.
func singleNodeModel(n *onnx.NodeProto, inits ...*onnx.TensorProto) *onnx.ModelProto {
	return newModel(13, []*onnx.NodeProto{n}, inits,
		[]*onnx.ValueInfoProto{fvi("x", -1, 8)}, []*onnx.ValueInfoProto{fvi("y", -1, 8)})
}

// mlpDeep is a 784-1024-512-10 MLP of Gemm(transB=1) layers with Relu
// between them, input "x", output "logits".
func mlpDeep(seed int64) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	sizes := []int{784, 1024, 512, 10}
	var nodes []*onnx.NodeProto
	var inits []*onnx.TensorProto
	in := "x"
	for i := 0; i+1 < len(sizes); i++ {
		w, b := fmt.Sprintf("fc%d.weight", i), fmt.Sprintf("fc%d.bias", i)
		out := fmt.Sprintf("fc%d", i)
		if i+2 == len(sizes) {
			out = "logits"
		}
		inits = append(inits,
			onnx.NewFloatTensor(w, []int64{int64(sizes[i+1]), int64(sizes[i])}, randMatrix(r, sizes[i+1], sizes[i], sizes[i])),
			onnx.NewFloatTensor(b, []int64{int64(sizes[i+1])}, randMatrix(r, 1, sizes[i+1], sizes[i])))
		nodes = append(nodes, onnx.NewNode("Gemm", out, []string{in, w, b}, []string{out}, onnx.IntAttr("transB", 1)))
		in = out
		if out != "logits" {
			in = out + "_relu"
			nodes = append(nodes, onnx.NewNode("Relu", in, []string{out}, []string{in}))
		}
	}
	return newModel(13, nodes, inits, []*onnx.ValueInfoProto{fvi("x", -1, 784)}, []*onnx.ValueInfoProto{fvi("logits", -1, 10)})
}
