package variants

import (
	"fmt"
	"slices"

	"github.com/infaas/infaas/onnx"
)

// convPlanAttrs is what a Conv rewrite keeps of the node beyond its inputs.
type convPlanAttrs struct {
	attrs    []*onnx.AttributeProto // Conv's attributes; ConvInteger has the same set
	channels int64                  // M, the output channels (weight dims[0])
	rank     int                    // rank of the weight, and of the output
}

// weightZeroPoint is the zero point of the uint8 weights (MatMul, Gemm and
// Conv): symmetric int8 values in [-127, 127] shifted into [1, 255].
const weightZeroPoint = 128

// shiftedWeights stores symmetric int8 weights as uint8 with zero point
// weightZeroPoint: the same values (q + 128 − 128).
func shiftedWeights(wq []int8) []uint8 {
	wu := make([]uint8, len(wq))
	for i, v := range wq {
		wu[i] = uint8(int(v) + weightZeroPoint)
	}
	return wu
}

// convAutoPads are the values ONNX defines for Conv's auto_pad.
var convAutoPads = []string{"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}

// convPlan checks that a Conv node can become ConvInteger: a constant float
// weight [M, C/group, k…] of rank 3 or more, well-formed attributes, and a
// bias that is a float vector of M values when it is constant (a computed bias
// is reshaped at run time).
func (q *quantizer) convPlan(n *onnx.NodeProto) (rewritePlan, string) {
	in := n.GetInput()
	if len(in) < 2 || len(in) > 3 || len(n.GetOutput()) != 1 {
		return rewritePlan{}, fmt.Sprintf("has %d inputs and %d outputs, want 2 or 3 and 1", len(in), len(n.GetOutput()))
	}
	if in[0] == "" || in[1] == "" {
		return rewritePlan{}, "has an empty input or weight name"
	}
	w, reason := q.constantWeight(in[1], -3)
	if reason != "" {
		return rewritePlan{}, reason
	}
	dims := w.GetDims()
	spatial := len(dims) - 2
	channels := dims[0]
	if reason := checkConvAttrs(n, dims); reason != "" {
		return rewritePlan{}, reason
	}
	bias := ""
	if len(in) == 3 && in[2] != "" {
		bias = in[2]
		// A constant bias becomes an [M,1,…,1] initializer, so it must be
		// readable now; any other (computed, or an initializer callers may
		// override) is reshaped at run time.
		if b, _ := q.constantTensor(bias); b != nil {
			if onnx.DataType(b) != onnx.TensorProto_FLOAT || len(b.GetDims()) != 1 || b.GetDims()[0] != channels {
				return rewritePlan{}, fmt.Sprintf("bias %q is %s %v, want FLOAT [%d]", bias, onnx.DataType(b), b.GetDims(), channels)
			}
			if _, err := onnx.TensorFloats(b); err != nil {
				return rewritePlan{}, fmt.Sprintf("bias: %v", err)
			}
		}
	}
	return rewritePlan{
		a: in[0], bias: bias, weightName: in[1], weight: w, alpha: 1,
		conv: &convPlanAttrs{attrs: n.GetAttribute(), channels: channels, rank: spatial + 2},
	}, ""
}

// checkConvAttrs returns why a Conv node's attributes cannot be carried over
// to ConvInteger as they are, or "".
func checkConvAttrs(n *onnx.NodeProto, wdims []int64) string {
	spatial := len(wdims) - 2
	seen := map[string]bool{}
	ints := func(a *onnx.AttributeProto, want int, least int64) string {
		if a.GetType() != onnx.AttributeProto_INTS {
			return fmt.Sprintf("attribute %s has type %s, want INTS", a.GetName(), a.GetType())
		}
		if len(a.GetInts()) != want {
			return fmt.Sprintf("attribute %s has %d values, want %d", a.GetName(), len(a.GetInts()), want)
		}
		for _, v := range a.GetInts() {
			if v < least {
				return fmt.Sprintf("attribute %s = %v has a value below %d", a.GetName(), a.GetInts(), least)
			}
		}
		return ""
	}
	for _, a := range n.GetAttribute() {
		name := a.GetName()
		if seen[name] {
			return fmt.Sprintf("attribute %s is given twice", name)
		}
		seen[name] = true
		var reason string
		switch name {
		case "auto_pad":
			if a.GetType() != onnx.AttributeProto_STRING {
				reason = fmt.Sprintf("attribute auto_pad has type %s, want STRING", a.GetType())
			} else if !slices.Contains(convAutoPads, string(a.GetS())) {
				reason = fmt.Sprintf("auto_pad %q is not one of %v", a.GetS(), convAutoPads)
			}
		case "group":
			g, err := onnx.AttrInt(n, "group", 1)
			switch {
			case err != nil:
				reason = err.Error()
			case g < 1 || wdims[0]%g != 0:
				reason = fmt.Sprintf("group=%d does not divide the %d output channels", g, wdims[0])
			}
		case "kernel_shape":
			if reason = ints(a, spatial, 1); reason == "" && !slices.Equal(a.GetInts(), wdims[2:]) {
				reason = fmt.Sprintf("kernel_shape %v does not match the weight's %v", a.GetInts(), wdims[2:])
			}
		case "pads":
			reason = ints(a, 2*spatial, 0)
		case "strides", "dilations":
			reason = ints(a, spatial, 1)
		default:
			reason = fmt.Sprintf("attribute %q is not a Conv attribute", name)
		}
		if reason != "" {
			return reason
		}
	}
	return ""
}

// emitConv returns the nodes that replace Conv n:
//
//	DynamicQuantizeLinear(X) → ConvInteger(X_q, W_q, X_zp, 0) → Cast(FLOAT)
//	→ Mul(·, X_scale × W_scale) [→ Add(·, B as [M,1,…,1])]
//
// ConvInteger takes Conv's attributes unchanged, and pads with X_zp, which is
// the quantised zero, so padding stays exact.
func (q *quantizer) emitConv(n *onnx.NodeProto, p rewritePlan) ([]*onnx.NodeProto, string) {
	base := nodeName(n)
	qw, reason := q.quantizeConvWeight(p)
	if reason != "" {
		return nil, reason
	}
	bias, biasNodes := "", []*onnx.NodeProto(nil)
	if p.bias != "" {
		bias, biasNodes = q.convBias(base, p)
	}
	qa, nodes := q.quantizeActivation(p.a)
	out := n.GetOutput()[0]
	product := q.fresh(base + "_ConvInteger_output")
	product32 := q.fresh(base + "_Cast_output")
	scale := q.fresh(base + "_scale")
	scaled := out
	if bias != "" {
		scaled = q.fresh(base + "_Mul_output")
	}
	nodes = append(nodes,
		onnx.NewNode("ConvInteger", q.fresh(base+"_ConvInteger"),
			[]string{qa.q, qw.q, qa.zeroPoint, qw.zeroPoint}, []string{product}, p.conv.attrs...),
		onnx.NewNode("Cast", q.fresh(base+"_Cast"), []string{product}, []string{product32},
			onnx.IntAttr("to", int64(onnx.TensorProto_FLOAT))),
		onnx.NewNode("Mul", q.fresh(base+"_scale_Mul"), []string{qa.scale, qw.scale}, []string{scale}),
		onnx.NewNode("Mul", q.fresh(base+"_Mul"), []string{product32, scale}, []string{scaled}),
	)
	if bias != "" {
		nodes = append(nodes, biasNodes...)
		nodes = append(nodes, onnx.NewNode("Add", q.fresh(base+"_bias_Add"), []string{scaled, bias}, []string{out}))
	}
	return nodes, ""
}

// broadcastDims returns [m, 1, …, 1] of length rank-1: the shape that
// broadcasts a per-channel vector over an [N, M, spatial…] tensor of the
// given rank.
func broadcastDims(m int64, rank int) []int64 {
	dims := make([]int64, rank-1)
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = m
	return dims
}

// quantizeConvWeight returns the int8 form of p's Conv weight, the same shape
// as the float weight, with one scale per output channel shaped [M,1,…,1],
// creating its initializers on first use.
func (q *quantizer) quantizeConvWeight(p rewritePlan) (*quantWeight, string) {
	key := weightKey{name: p.weightName, alpha: 1, conv: true}
	if qw, ok := q.weights[key]; ok {
		return qw, ""
	}
	w := p.weight
	values, err := onnx.TensorFloats(w)
	if err != nil {
		return nil, err.Error()
	}
	m := int(p.conv.channels)
	wq, scales, err := symmetricPerRow(values, m, len(values)/max(m, 1))
	if err != nil {
		return nil, fmt.Sprintf("weight %q: %v", p.weightName, err)
	}
	qw := &quantWeight{
		q:         q.fresh(p.weightName + "_quantized"),
		scale:     q.fresh(p.weightName + "_scale"),
		zeroPoint: q.fresh(p.weightName + "_zero_point"),
	}
	// Stored as uint8 with zero point 128: the same values as int8 with zero
	// point 0 (q + 128 - 128), but ORT's ConvInteger runs u8u8 on MLAS's
	// fast kernels and u8s8 about five times slower.
	inits := []*onnx.TensorProto{
		onnx.NewUint8Tensor(qw.q, w.GetDims(), shiftedWeights(wq)),
		onnx.NewFloatTensor(qw.scale, broadcastDims(p.conv.channels, p.conv.rank), scales),
		onnx.NewUint8Tensor(qw.zeroPoint, nil, []uint8{weightZeroPoint}),
	}
	q.record(key, qw, w, inits)
	return qw, ""
}

// convBias returns the name of p's bias shaped [M,1,…,1] to add to the
// ConvInteger output, and the nodes that compute it. A constant bias becomes a
// new initializer (once per bias and rank; the float vector is dropped later
// if unused); any other is reshaped at run time.
func (q *quantizer) convBias(base string, p rewritePlan) (string, []*onnx.NodeProto) {
	dims := broadcastDims(p.conv.channels, p.conv.rank)
	if b, _ := q.constantTensor(p.bias); b != nil {
		key := biasKey{name: p.bias, rank: p.conv.rank}
		if name, ok := q.biases[key]; ok {
			return name, nil
		}
		values, _ := onnx.TensorFloats(b) // convPlan read it already
		name := q.fresh(p.bias + "_reshaped")
		q.newInits = append(q.newInits, onnx.NewFloatTensor(name, dims, values))
		q.biases[key] = name
		return name, nil
	}
	shape := q.fresh(base + "_bias_shape")
	q.newInits = append(q.newInits, onnx.NewInt64Tensor(shape, []int64{int64(len(dims))}, dims))
	reshaped := q.fresh(base + "_bias_reshaped")
	return reshaped, []*onnx.NodeProto{onnx.NewNode("Reshape", q.fresh(base+"_bias_Reshape"), []string{p.bias, shape}, []string{reshaped})}
}
