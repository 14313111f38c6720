// Package contracts builds the zoo's "contract" models: small, real ONNX
// models whose tensor contracts go beyond one float32 input and one output.
// They have several inputs and outputs, INT64 tensors, a rank-0 scalar input,
// dynamic sequence lengths, heights and widths, recurrent state, and no batch
// dimension at all. infaas's tests register and serve them to exercise those
// contracts.
//
// The models are built in Go, deterministically: the weights come from a PCG
// generator seeded with the model's name and are untrained (uniform, with
// variance 1/fan_in, so activations stay well-conditioned). Build returns the
// same bytes on every run and platform; `go run ./zoo/contracts/gen` writes
// them to zoo/models/<name>.onnx. Every model uses opset 17 of the default
// domain and IR version 8, and only operators ONNX Runtime runs on CPU.
package contracts

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/infaas/infaas/onnx"
)

// Model describes one contract model.
type Model struct {
	Name        string
	Task        string
	Dataset     string
	Description string
}

const (
	irVersion    = 8
	opsetVersion = 17
	producerName = "infaas-zoo-contracts"
)

type spec struct {
	Model
	build func(*builder) (inputs, outputs []*onnx.ValueInfoProto)
}

var specs = []spec{
	{Model{"tabular-two-inputs", "classification", "tabular",
		"features FP32 [batch,16] plus an embedding of category INT64 [batch] (8 categories), " +
			"then a 16-32-4 MLP: scores FP32 [batch,4]"}, buildTabular},
	{Model{"digits-three-outputs", "classification", "digits-multi",
		"image FP32 [batch,1,28,28] (0-1 pixels) through Conv3x3 stride 2 (8 ch), Relu, MaxPool2, " +
			"Gemm to embedding FP32 [batch,32], Relu, Gemm to logits FP32 [batch,10]; label INT64 [batch] is ArgMax(logits)"}, buildDigits},
	{Model{"segment-dynamic-hw", "segmentation", "synthetic",
		"image FP32 [batch,3,height,width] through Conv3x3 pad 1 (8 ch), Relu, Conv1x1, Sigmoid: " +
			"mask FP32 [batch,1,height,width] in (0,1), like a text detector's probability map"}, buildSegment},
	{Model{"vad-recurrent", "vad", "audio",
		"Silero-VAD-shaped stateful model: input FP32 [batch,64] scaled by sr/16000 (sr INT64 scalar), " +
			"two stacked tanh recurrences over state FP32 [2,batch,32] giving stateN FP32 [2,batch,32], " +
			"output FP32 [batch,1] = Sigmoid of a projection of the top layer's new state"}, buildVAD},
	{Model{"text-attention", "classification", "text",
		"input_ids INT64 [batch,sequence] embedded (vocab 100, d 16), one single-head self-attention with " +
			"attention_mask INT64 [batch,sequence] masking the keys, a residual, masked mean pooling and a linear layer: " +
			"logits FP32 [batch,2]; padding (mask 0) does not change the logits"}, buildText},
	{Model{"image-no-batch", "heatmap", "synthetic",
		"no batch dimension: image FP32 [3,height,width] through Unsqueeze, Conv3x3 pad 1 (1 ch), Squeeze, Sigmoid: " +
			"heatmap FP32 [height,width]"}, buildNoBatch},
}

// Models lists the contract models in a fixed order.
func Models() []Model {
	out := make([]Model, len(specs))
	for i, s := range specs {
		out[i] = s.Model
	}
	return out
}

// Build returns the serialized ONNX model called name. The bytes are the same
// on every call.
func Build(name string) ([]byte, error) {
	for _, s := range specs {
		if s.Name != name {
			continue
		}
		b := newBuilder(s.Name)
		inputs, outputs := s.build(b)
		m := &onnx.ModelProto{
			IrVersion:       irVersion,
			OpsetImport:     []*onnx.OperatorSetIdProto{{Domain: "", Version: opsetVersion}},
			ProducerName:    producerName,
			ProducerVersion: "1",
			DocString:       s.Description,
			Graph: &onnx.GraphProto{
				Name:        s.Name,
				Node:        b.nodes,
				Initializer: b.inits,
				Input:       inputs,
				Output:      outputs,
			},
		}
		if err := onnx.Validate(m); err != nil {
			return nil, fmt.Errorf("contract model %s: %w", name, err)
		}
		return onnx.Marshal(m)
	}
	return nil, fmt.Errorf("no contract model %q", name)
}

// builder accumulates a graph's nodes and initializers.
type builder struct {
	rng   *rand.Rand
	nodes []*onnx.NodeProto
	inits []*onnx.TensorProto
	seq   int
}

func newBuilder(model string) *builder {
	h := fnv.New64a()
	h.Write([]byte(model))
	return &builder{rng: rand.New(rand.NewPCG(h.Sum64(), 0x696e66616173))}
}

// uniform returns a value uniform in [-1, 1) computed exactly from the
// generator's bits (no transcendental functions, no rounding that could vary
// by platform).
func (b *builder) uniform() float64 {
	return float64(int64(b.rng.Uint64()>>10)-1<<53) / (1 << 53)
}

// weight adds a FLOAT initializer with values uniform in ±sqrt(3/fanIn), i.e.
// mean 0 and variance 1/fanIn, and returns its name.
func (b *builder) weight(name string, fanIn int64, dims ...int64) string {
	n, err := onnx.NumElements(dims)
	if err != nil {
		panic(err)
	}
	scale := math.Sqrt(3 / float64(fanIn))
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(b.uniform() * scale)
	}
	b.inits = append(b.inits, onnx.NewFloatTensor(name, dims, data))
	return name
}

// floats adds a FLOAT constant initializer.
func (b *builder) floats(name string, dims []int64, data ...float32) string {
	b.inits = append(b.inits, onnx.NewFloatTensor(name, dims, data))
	return name
}

// ints adds an INT64 constant initializer.
func (b *builder) ints(name string, dims []int64, data ...int64) string {
	b.inits = append(b.inits, onnx.NewInt64Tensor(name, dims, data))
	return name
}

// op adds a single-output node and returns the name of its output.
func (b *builder) op(opType string, inputs []string, attrs ...*onnx.AttributeProto) string {
	b.seq++
	return b.opTo(fmt.Sprintf("%s_%d", opType, b.seq), opType, inputs, attrs...)
}

// opTo adds a single-output node whose output is called out (a graph output).
func (b *builder) opTo(out, opType string, inputs []string, attrs ...*onnx.AttributeProto) string {
	name := fmt.Sprintf("%s_node%d", opType, len(b.nodes))
	b.nodes = append(b.nodes, onnx.NewNode(opType, name, inputs, []string{out}, attrs...))
	return out
}

// tensor returns a tensor-typed ValueInfoProto. Each dim is an int (a fixed
// size) or a string (a named dynamic dimension, dim_param).
func tensor(name string, elem onnx.TensorProto_DataType, dims ...any) *onnx.ValueInfoProto {
	shape := &onnx.TensorShapeProto{Dim: make([]*onnx.TensorShapeProto_Dimension, len(dims))}
	for i, d := range dims {
		switch d := d.(type) {
		case int:
			shape.Dim[i] = &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}}
		case string:
			shape.Dim[i] = &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d}}
		default:
			panic(fmt.Sprintf("tensor %s: dim %d has type %T", name, i, d))
		}
	}
	return &onnx.ValueInfoProto{
		Name: name,
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
			ElemType: int32(elem),
			Shape:    shape,
		}}},
	}
}

const (
	f32 = onnx.TensorProto_FLOAT
	i64 = onnx.TensorProto_INT64
)

// Dynamic dimension names.
const (
	batch    = "batch"
	sequence = "sequence"
	height   = "height"
	width    = "width"
)

func in(names ...string) []string { return names }

// gemm adds Gemm(x, w, bias) with w [k,n] and bias [n], both seeded.
func (b *builder) gemm(x, prefix string, k, n int64) string {
	w := b.weight(prefix+".weight", k, k, n)
	bias := b.weight(prefix+".bias", k, n)
	return b.op("Gemm", in(x, w, bias))
}

func buildTabular(b *builder) (inputs, outputs []*onnx.ValueInfoProto) {
	const nCat, nFeat, nHidden, nOut = 8, 16, 32, 4
	emb := b.weight("category_embedding", 1, nCat, nFeat)
	e := b.op("Gather", in(emb, "category"), onnx.IntAttr("axis", 0))
	x := b.op("Add", in("features", e))
	h := b.op("Relu", in(b.gemm(x, "fc1", nFeat, nHidden)))
	w := b.weight("fc2.weight", nHidden, nHidden, nOut)
	bias := b.weight("fc2.bias", nHidden, nOut)
	b.opTo("scores", "Gemm", in(h, w, bias))
	return []*onnx.ValueInfoProto{
			tensor("features", f32, batch, nFeat),
			tensor("category", i64, batch),
		}, []*onnx.ValueInfoProto{
			tensor("scores", f32, batch, nOut),
		}
}

func buildDigits(b *builder) (inputs, outputs []*onnx.ValueInfoProto) {
	const ch, nEmb, nClass = 8, 32, 10
	w := b.weight("conv.weight", 9, ch, 1, 3, 3)
	bias := b.weight("conv.bias", 9, ch)
	c := b.op("Conv", in("image", w, bias),
		onnx.IntsAttr("kernel_shape", 3, 3), onnx.IntsAttr("strides", 2, 2), onnx.IntsAttr("pads", 1, 1, 1, 1))
	c = b.op("Relu", in(c))
	p := b.op("MaxPool", in(c), onnx.IntsAttr("kernel_shape", 2, 2), onnx.IntsAttr("strides", 2, 2)) // [b,8,7,7]
	f := b.op("Flatten", in(p), onnx.IntAttr("axis", 1))
	const flat = ch * 7 * 7
	we := b.weight("embed.weight", flat, flat, nEmb)
	be := b.weight("embed.bias", flat, nEmb)
	emb := b.opTo("embedding", "Gemm", in(f, we, be))
	h := b.op("Relu", in(emb))
	wl := b.weight("classifier.weight", nEmb, nEmb, nClass)
	bl := b.weight("classifier.bias", nEmb, nClass)
	logits := b.opTo("logits", "Gemm", in(h, wl, bl))
	b.opTo("label", "ArgMax", in(logits), onnx.IntAttr("axis", 1), onnx.IntAttr("keepdims", 0))
	return []*onnx.ValueInfoProto{
			tensor("image", f32, batch, 1, 28, 28),
		}, []*onnx.ValueInfoProto{
			tensor("logits", f32, batch, nClass),
			tensor("embedding", f32, batch, nEmb),
			tensor("label", i64, batch),
		}
}

func buildSegment(b *builder) (inputs, outputs []*onnx.ValueInfoProto) {
	const ch = 8
	w1 := b.weight("conv1.weight", 27, ch, 3, 3, 3)
	b1 := b.weight("conv1.bias", 27, ch)
	c := b.op("Conv", in("image", w1, b1), onnx.IntsAttr("kernel_shape", 3, 3), onnx.IntsAttr("pads", 1, 1, 1, 1))
	c = b.op("Relu", in(c))
	w2 := b.weight("conv2.weight", ch, 1, ch, 1, 1)
	b2 := b.weight("conv2.bias", ch, 1)
	c = b.op("Conv", in(c, w2, b2), onnx.IntsAttr("kernel_shape", 1, 1))
	b.opTo("mask", "Sigmoid", in(c))
	return []*onnx.ValueInfoProto{
			tensor("image", f32, batch, 3, height, width),
		}, []*onnx.ValueInfoProto{
			tensor("mask", f32, batch, 1, height, width),
		}
}

func buildVAD(b *builder) (inputs, outputs []*onnx.ValueInfoProto) {
	const nIn, nState = 64, 32
	// sr scales the input: x = input * (sr / 16000).
	srf := b.op("Cast", in("sr"), onnx.IntAttr("to", int64(f32)))
	rate := b.op("Div", in(srf, b.floats("sr_reference", nil, 16000)))
	x := b.op("Mul", in("input", rate))
	axis0 := b.ints("axis0", []int64{1}, 0)
	var layers []string
	for l := range 2 {
		prefix := fmt.Sprintf("rnn%d", l)
		fanIn := int64(nIn)
		if l > 0 {
			fanIn = nState
		}
		// h' = tanh(x W + h U + b): W and U each get half the variance so the
		// sum has variance about 1.
		h := b.op("Gather", in("state", b.ints(prefix+".layer", nil, int64(l))), onnx.IntAttr("axis", 0)) // [b,32]
		xw := b.op("MatMul", in(x, b.weight(prefix+".input_weight", 2*fanIn, fanIn, nState)))
		hu := b.op("MatMul", in(h, b.weight(prefix+".state_weight", 2*nState, nState, nState)))
		s := b.op("Add", in(b.op("Add", in(xw, hu)), b.weight(prefix+".bias", fanIn, nState)))
		x = b.op("Tanh", in(s))
		layers = append(layers, b.op("Unsqueeze", in(x, axis0)))
	}
	b.opTo("stateN", "Concat", layers, onnx.IntAttr("axis", 0))
	p := b.op("MatMul", in(x, b.weight("head.weight", nState, nState, 1)))
	p = b.op("Add", in(p, b.weight("head.bias", nState, 1)))
	b.opTo("output", "Sigmoid", in(p))
	return []*onnx.ValueInfoProto{
			tensor("input", f32, batch, nIn),
			tensor("state", f32, 2, batch, nState),
			tensor("sr", i64),
		}, []*onnx.ValueInfoProto{
			tensor("output", f32, batch, 1),
			tensor("stateN", f32, 2, batch, nState),
		}
}

func buildText(b *builder) (inputs, outputs []*onnx.ValueInfoProto) {
	const vocab, d, nClass = 100, 16, 2
	emb := b.weight("token_embedding", 1, vocab, d)
	e := b.op("Gather", in(emb, "input_ids"), onnx.IntAttr("axis", 0)) // [b,s,d]
	q := b.op("MatMul", in(e, b.weight("attn.q", d, d, d)))
	k := b.op("MatMul", in(e, b.weight("attn.k", d, d, d)))
	v := b.op("MatMul", in(e, b.weight("attn.v", d, d, d)))
	kt := b.op("Transpose", in(k), onnx.IntsAttr("perm", 0, 2, 1))                            // [b,d,s]
	scores := b.op("Div", in(b.op("MatMul", in(q, kt)), b.floats("sqrt_d", nil, float32(4)))) // [b,s,s]
	// Additive mask over the keys: (1 - mask) * -1e4, broadcast over queries.
	mask := b.op("Cast", in("attention_mask"), onnx.IntAttr("to", int64(f32))) // [b,s]
	neg := b.op("Mul", in(b.op("Sub", in(b.floats("one", nil, 1), mask)), b.floats("mask_value", nil, -1e4)))
	neg = b.op("Unsqueeze", in(neg, b.ints("axis1", []int64{1}, 1))) // [b,1,s]
	probs := b.op("Softmax", in(b.op("Add", in(scores, neg))), onnx.IntAttr("axis", -1))
	attn := b.op("MatMul", in(probs, v))                                                       // [b,s,d]
	out := b.op("MatMul", in(attn, b.weight("attn.out", d, d, d)))                             // [b,s,d]
	h := b.op("Add", in(e, out))                                                               // residual
	m3 := b.op("Unsqueeze", in(mask, b.ints("axis2", []int64{1}, 2)))                          // [b,s,1]
	sum := b.op("ReduceSum", in(b.op("Mul", in(h, m3)), "axis1"), onnx.IntAttr("keepdims", 0)) // [b,d]
	count := b.op("ReduceSum", in(mask, "axis1"), onnx.IntAttr("keepdims", 1))                 // [b,1]
	count = b.op("Max", in(count, "one"))                                                      // an all-padding row pools to 0, not NaN
	pooled := b.op("Div", in(sum, count))
	w := b.weight("classifier.weight", d, d, nClass)
	bias := b.weight("classifier.bias", d, nClass)
	b.opTo("logits", "Gemm", in(pooled, w, bias))
	return []*onnx.ValueInfoProto{
			tensor("input_ids", i64, batch, sequence),
			tensor("attention_mask", i64, batch, sequence),
		}, []*onnx.ValueInfoProto{
			tensor("logits", f32, batch, nClass),
		}
}

func buildNoBatch(b *builder) (inputs, outputs []*onnx.ValueInfoProto) {
	x := b.op("Unsqueeze", in("image", b.ints("axis0", []int64{1}, 0))) // [1,3,h,w]
	w := b.weight("conv.weight", 27, 1, 3, 3, 3)
	bias := b.weight("conv.bias", 27, 1)
	c := b.op("Conv", in(x, w, bias), onnx.IntsAttr("kernel_shape", 3, 3), onnx.IntsAttr("pads", 1, 1, 1, 1)) // [1,1,h,w]
	s := b.op("Squeeze", in(c, b.ints("axes01", []int64{2}, 0, 1)))                                           // [h,w]
	b.opTo("heatmap", "Sigmoid", in(s))
	return []*onnx.ValueInfoProto{
			tensor("image", f32, 3, height, width),
		}, []*onnx.ValueInfoProto{
			tensor("heatmap", f32, height, width),
		}
}
