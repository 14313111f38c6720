package variants

import (
	"errors"
	"fmt"
	"strings"

	"github.com/infaas/infaas/onnx"
)

// ErrNothingToQuantize is returned by QuantizeDynamic when the model has no
// MatMul, Gemm or Conv node it can rewrite. The report that comes with it says why
// each candidate was skipped.
var ErrNothingToQuantize = errors.New("nothing to quantize")

// minQuantOpset is the ai.onnx opset the rewrite needs: DynamicQuantizeLinear
// arrived in opset 11 (MatMulInteger and ConvInteger in 10).
const minQuantOpset = 11

// SkippedNode is a MatMul, Gemm or Conv node QuantizeDynamic left in float32.
type SkippedNode struct {
	Node   string // node name, or its first output when the node is unnamed
	OpType string
	Reason string
}

// QuantizeReport describes what QuantizeDynamic did.
type QuantizeReport struct {
	MatMul  int           // MatMul nodes rewritten to int8
	Gemm    int           // Gemm nodes rewritten to int8
	Conv    int           // Conv nodes rewritten to int8 (ConvInteger)
	Skipped []SkippedNode // MatMul/Gemm/Conv nodes left in float32, with the reason

	// Weights counts the distinct float32 weights quantised, initializers
	// and Constant nodes alike.
	Weights int
	// WeightBytesBefore is the size of those float32 weights; WeightBytesAfter
	// the size of what replaces them (int8 weights, float32 scales, int8 zero
	// points).
	WeightBytesBefore, WeightBytesAfter int64
	// FloatWeightsKept counts quantised weights whose float32 initializer (or
	// Constant node) had to stay because some other node still reads it.
	FloatWeightsKept int

	// OpsetBefore and OpsetAfter are the ai.onnx opset versions; they differ
	// when the opset had to be raised to 11 for DynamicQuantizeLinear.
	OpsetBefore, OpsetAfter int64

	ModelBytesBefore, ModelBytesAfter int
}

// Quantized returns the number of nodes rewritten, of every kind.
func (r QuantizeReport) Quantized() int { return r.MatMul + r.Gemm + r.Conv }

// WeightRatio returns WeightBytesBefore / WeightBytesAfter (0 when nothing was
// quantised).
func (r QuantizeReport) WeightRatio() float64 {
	if r.WeightBytesAfter == 0 {
		return 0
	}
	return float64(r.WeightBytesBefore) / float64(r.WeightBytesAfter)
}

// QuantizeDynamic rewrites a float32 ONNX model so that its MatMul, Gemm and
// Conv nodes with constant weights run in int8, the way ONNX Runtime's
// quantize_dynamic does, using only standard ONNX operators:
//
//	MatMul(A, W)  →  DynamicQuantizeLinear(A) → (A_q uint8, A_scale, A_zp)
//	                 MatMulInteger(A_q, W_q uint8, A_zp, 128) → int32
//	                 Cast(to=FLOAT) → Mul(·, A_scale × W_scale)
//	Gemm(A, W, C) →  the same on W (transposed when transB=1, alpha folded
//	                 into W_scale), then Add(·, C)
//	Conv(X, W, B) →  DynamicQuantizeLinear(X)
//	                 ConvInteger(X_q, W_q uint8, X_zp, 128) → int32, with the
//	                 Conv's attributes (group, pads, strides, dilations,
//	                 auto_pad, kernel_shape) unchanged
//	                 Cast(to=FLOAT) → Mul(·, X_scale × W_scale [M,1,…,1])
//	                 then Add(·, B reshaped to [M,1,…,1])
//
// Weights are quantised symmetrically with one scale per output column (per
// output channel for Conv, so a single scalar zero point serves ConvInteger,
// which takes no per-channel ones). A weight is constant when it is an
// initializer (not overridable as a graph input) or the tensor value of a
// Constant node of the main graph. The rewritten nodes write the original
// output names, so the rest of the graph is untouched; float32 weights (and
// Conv biases) that nothing else reads are dropped, Constant nodes included.
// The ai.onnx opset is raised to 11 when lower.
//
// Activations are quantised to uint8. Weights are symmetric int8 values
// stored as uint8 with zero point 128 (the same values, q + 128 − 128), so
// that ONNX Runtime runs its u8u8 integer kernels, which are exact on every
// x86 CPU. Its u8s8 kernels, which int8 weights select, saturate int16
// intermediate sums on CPUs with AVX2 but no VNNI: on such a machine (an AMD
// EPYC, 2026-12-06) three of TestQuantizeDynamicMatchesFloat's graphs came
// out 3.2–6.6 % off the float model, where VNNI machines had kept them
// under 3 %, so one variant answered differently by the worker it ran on.
// u8u8 costs speed there: the 784-1024-512-10 MLP took 49–61 µs a sample at
// batch 1 and 21.5–22.8 at batch 64, against 35 and 16 µs with u8s8 (fp32:
// 111 and 29.6; BenchmarkMLPInference). For Conv, u8u8 is also the fast
// form: ONNX Runtime 1.24's CPU ConvInteger runs int8 weights 5–9× slower on
// mnist-cnn-m (the weight is the left operand of its integer GEMM, where
// MLAS's fast x86 kernels take unsigned data).
//
// Speed: int8 MatMul/Gemm is faster than float32 on ORT's CPU provider, but
// ConvInteger (im2col + integer GEMM, then a Cast/Mul/Add pass over the
// output) is not: float32 Conv runs on MLAS's NCHWc kernels with the bias and
// activation fused. On a 2-core AVX512-VNNI machine, one thread, mnist-cnn-m
// is no faster in int8 than in float32 at batch 1 (from even to 1.4× slower)
// and about 1.6× slower at batch 8 (BenchmarkQuantizedCNN); the int8 file is
// 4× smaller. The profiler's measurements decide which variant serves.
//
// The report is filled in also when err is ErrNothingToQuantize.
func QuantizeDynamic(model []byte) (out []byte, report QuantizeReport, err error) {
	report.ModelBytesBefore = len(model)
	m, err := onnx.Parse(model)
	if err != nil {
		return nil, report, fmt.Errorf("quantize: %w", err)
	}
	report.OpsetBefore = onnx.OpsetVersion(m, "")
	report.OpsetAfter = report.OpsetBefore

	q := newQuantizer(m)
	q.rewrite()
	report.MatMul, report.Gemm, report.Conv, report.Skipped = q.matmuls, q.gemms, q.convs, q.skipped
	if report.Quantized() == 0 {
		return nil, report, nothingToQuantize(report.Skipped)
	}
	floatBytes := map[string]int64{}
	for key, w := range q.weights {
		floatBytes[key.name] = w.floatBytes
		report.WeightBytesAfter += w.quantBytes
	}
	report.Weights = len(floatBytes)
	for _, b := range floatBytes {
		report.WeightBytesBefore += b
	}
	report.FloatWeightsKept = q.dropUnusedWeights()

	if report.OpsetBefore < minQuantOpset {
		onnx.SetOpsetVersion(m, "", minQuantOpset)
		report.OpsetAfter = minQuantOpset
	}
	out, err = onnx.Marshal(m)
	if err != nil {
		return nil, report, fmt.Errorf("quantize: %w", err)
	}
	report.ModelBytesAfter = len(out)
	return out, report, nil
}

func nothingToQuantize(skipped []SkippedNode) error {
	if len(skipped) == 0 {
		return fmt.Errorf("quantize: %w: the model has no MatMul, Gemm or Conv nodes", ErrNothingToQuantize)
	}
	reasons := make([]string, 0, len(skipped))
	for i, s := range skipped {
		if i == 3 {
			reasons = append(reasons, fmt.Sprintf("and %d more", len(skipped)-i))
			break
		}
		reasons = append(reasons, fmt.Sprintf("%s %q: %s", s.OpType, s.Node, s.Reason))
	}
	return fmt.Errorf("quantize: %w: all %d MatMul/Gemm/Conv nodes were skipped (%s)",
		ErrNothingToQuantize, len(skipped), strings.Join(reasons, "; "))
}
