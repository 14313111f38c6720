package variants

import (
	"math/rand"

	"github.com/infaas/infaas/onnx"
)

// Small float32 convolutional models built in Go for the Conv rewrite tests.

// convWeight returns a random Conv weight [m, c, k…] scaled by 1/sqrt(fan-in).
func convWeight(r *rand.Rand, name string, dims ...int64) *onnx.TensorProto {
	n, fanIn := int64(1), int64(1)
	for i, d := range dims {
		n *= d
		if i > 0 {
			fanIn *= d
		}
	}
	return onnx.NewFloatTensor(name, dims, randMatrix(r, 1, int(n), int(fanIn)))
}

// constantNode returns a Constant node whose value attribute holds t, writing
// t's name.
func constantNode(t *onnx.TensorProto) *onnx.NodeProto {
	return onnx.NewNode("Constant", t.GetName()+"_Constant", nil, []string{t.GetName()},
		&onnx.AttributeProto{Name: "value", Type: onnx.AttributeProto_TENSOR, T: t})
}

// convReluConvModel: x [N, 3, 16, 16] → Conv(3→8, 3×3, pads 1, strides 2, bias)
// → Relu → Conv(8→16, 3×3, dilations 2, pads 2, kernel_shape given, bias) → y
// [N, 16, 8, 8].
func convReluConvModel(seed int64) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	return newModel(13,
		[]*onnx.NodeProto{
			onnx.NewNode("Conv", "conv1", []string{"x", "W1", "b1"}, []string{"h"},
				onnx.IntsAttr("pads", 1, 1, 1, 1), onnx.IntsAttr("strides", 2, 2), onnx.IntAttr("group", 1)),
			onnx.NewNode("Relu", "relu", []string{"h"}, []string{"h_relu"}),
			onnx.NewNode("Conv", "conv2", []string{"h_relu", "W2", "b2"}, []string{"y"},
				onnx.IntsAttr("kernel_shape", 3, 3), onnx.IntsAttr("dilations", 2, 2), onnx.IntsAttr("pads", 2, 2, 2, 2)),
		},
		[]*onnx.TensorProto{
			convWeight(r, "W1", 8, 3, 3, 3),
			onnx.NewFloatTensor("b1", []int64{8}, randMatrix(r, 1, 8, 27)),
			convWeight(r, "W2", 16, 8, 3, 3),
			onnx.NewFloatTensor("b2", []int64{16}, randMatrix(r, 1, 16, 72)),
		},
		[]*onnx.ValueInfoProto{fvi("x", -1, 3, 16, 16)},
		[]*onnx.ValueInfoProto{fvi("y", -1, 16, 8, 8)},
	)
}

// groupedConvModel: x [N, 8, 12, 12] → Conv(8→8, 3×3, group 2, no bias,
// auto_pad SAME_UPPER, strides 2) → y [N, 8, 6, 6].
func groupedConvModel(seed int64) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	return newModel(13,
		[]*onnx.NodeProto{
			onnx.NewNode("Conv", "grouped", []string{"x", "W"}, []string{"y"},
				onnx.IntAttr("group", 2), onnx.StringAttr("auto_pad", "SAME_UPPER"), onnx.IntsAttr("strides", 2, 2)),
		},
		[]*onnx.TensorProto{convWeight(r, "W", 8, 4, 3, 3)},
		[]*onnx.ValueInfoProto{fvi("x", -1, 8, 12, 12)},
		[]*onnx.ValueInfoProto{fvi("y", -1, 8, 6, 6)},
	)
}

// depthwiseConvModel: x [N, 6, 10, 10] → Conv(depthwise, group 6, 3×3, pads 1,
// weight and bias from Constant nodes) → y [N, 6, 10, 10].
func depthwiseConvModel(seed int64) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	w := convWeight(r, "W", 6, 1, 3, 3)
	b := onnx.NewFloatTensor("b", []int64{6}, randMatrix(r, 1, 6, 9))
	return newModel(13,
		[]*onnx.NodeProto{
			constantNode(w),
			constantNode(b),
			onnx.NewNode("Conv", "depthwise", []string{"x", "W", "b"}, []string{"y"},
				onnx.IntAttr("group", 6), onnx.IntsAttr("pads", 1, 1, 1, 1)),
		},
		nil,
		[]*onnx.ValueInfoProto{fvi("x", -1, 6, 10, 10)},
		[]*onnx.ValueInfoProto{fvi("y", -1, 6, 10, 10)},
	)
}

// constantWeightsModel keeps every weight in a Constant node:
// x [N, 4, 8, 8] → Conv(4→8, 3×3) → Relu → Flatten → Gemm(transB=1, 288→32)
// → Relu → MatMul(32→10) → y [N, 10].
func constantWeightsModel(seed int64) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	wc := convWeight(r, "Wc", 8, 4, 3, 3)
	bc := onnx.NewFloatTensor("bc", []int64{8}, randMatrix(r, 1, 8, 36))
	wg := onnx.NewFloatTensor("Wg", []int64{32, 288}, randMatrix(r, 32, 288, 288))
	bg := onnx.NewFloatTensor("bg", []int64{32}, randMatrix(r, 1, 32, 288))
	wm := onnx.NewFloatTensor("Wm", []int64{32, 10}, randMatrix(r, 32, 10, 32))
	return newModel(13,
		[]*onnx.NodeProto{
			constantNode(wc), constantNode(bc), constantNode(wg), constantNode(bg), constantNode(wm),
			onnx.NewNode("Conv", "conv", []string{"x", "Wc", "bc"}, []string{"c"}),
			onnx.NewNode("Relu", "relu1", []string{"c"}, []string{"c_relu"}),
			onnx.NewNode("Flatten", "flatten", []string{"c_relu"}, []string{"f"}, onnx.IntAttr("axis", 1)),
			onnx.NewNode("Gemm", "fc", []string{"f", "Wg", "bg"}, []string{"h"}, onnx.IntAttr("transB", 1)),
			onnx.NewNode("Relu", "relu2", []string{"h"}, []string{"h_relu"}),
			onnx.NewNode("MatMul", "out", []string{"h_relu", "Wm"}, []string{"y"}),
		},
		nil,
		[]*onnx.ValueInfoProto{fvi("x", -1, 4, 8, 8)},
		[]*onnx.ValueInfoProto{fvi("y", -1, 10)},
	)
}

// conv1dModel: x [N, 4, 20] → Conv(4→6, kernel 5, auto_pad VALID, strides 2,
// bias computed by a node) → y [N, 6, 8].
func conv1dModel(seed int64) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	return newModel(13,
		[]*onnx.NodeProto{
			onnx.NewNode("Relu", "bias_relu", []string{"b"}, []string{"b_relu"}),
			onnx.NewNode("Conv", "conv1d", []string{"x", "W", "b_relu"}, []string{"y"},
				onnx.StringAttr("auto_pad", "VALID"), onnx.IntsAttr("strides", 2)),
		},
		[]*onnx.TensorProto{
			convWeight(r, "W", 6, 4, 5),
			onnx.NewFloatTensor("b", []int64{6}, randMatrix(r, 1, 6, 1)),
		},
		[]*onnx.ValueInfoProto{fvi("x", -1, 4, 20)},
		[]*onnx.ValueInfoProto{fvi("y", -1, 6, 8)},
	)
}

// sharedConvModel reads one input, weight and bias from several Convs:
//
//	y = Conv(x, W, b)               (pads 1)
//	z = Conv(x, W, b, strides 2)    (same quantised weight and bias)
//	u = Conv(x, W)                  (no bias)
//	r = Relu(W)                     (keeps float W alive)
func sharedConvModel(seed int64) *onnx.ModelProto {
	r := rand.New(rand.NewSource(seed))
	return newModel(13,
		[]*onnx.NodeProto{
			onnx.NewNode("Conv", "", []string{"x", "W", "b"}, []string{"y"}, onnx.IntsAttr("pads", 1, 1, 1, 1)),
			onnx.NewNode("Conv", "", []string{"x", "W", "b"}, []string{"z"}, onnx.IntsAttr("strides", 2, 2)),
			onnx.NewNode("Conv", "", []string{"x", "W"}, []string{"u"}),
			onnx.NewNode("Relu", "relu_w", []string{"W"}, []string{"r"}),
		},
		[]*onnx.TensorProto{
			convWeight(r, "W", 5, 3, 3, 3),
			onnx.NewFloatTensor("b", []int64{5}, randMatrix(r, 1, 5, 27)),
		},
		[]*onnx.ValueInfoProto{fvi("x", -1, 3, 9, 9)},
		[]*onnx.ValueInfoProto{fvi("y", -1, 5, 9, 9), fvi("z", -1, 5, 4, 4), fvi("u", -1, 5, 7, 7), fvi("r", 5, 3, 3, 3)},
	)
}

// ir3ConvModel is convReluConvModel written the IR version 3 way: opset 9 and
// every initializer also a graph input.
func ir3ConvModel(seed int64) *onnx.ModelProto {
	m := convReluConvModel(seed)
	m.IrVersion = 3
	m.OpsetImport[0].Version = 9
	for _, t := range m.Graph.Initializer {
		m.Graph.Input = append(m.Graph.Input, onnx.NewValueInfo(t.GetName(), onnx.DataType(t), t.GetDims()))
	}
	return m
}

// singleConvModel wraps one Conv-like node reading x [N, 4, 8, 8] and writing
// y; used for the cases the rewrite must skip.
func singleConvModel(n *onnx.NodeProto, inits ...*onnx.TensorProto) *onnx.ModelProto {
	return newModel(13, []*onnx.NodeProto{n}, inits,
		[]*onnx.ValueInfoProto{fvi("x", -1, 4, 8, 8)}, []*onnx.ValueInfoProto{fvi("y", -1, 8, 6, 6)})
}
