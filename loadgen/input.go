package loadgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
)

// synthetic is one input tensor made up to fit a model input as the
// server's metadata describes it: its shape (the batch first, when the
// model has a batch dimension) and its values, uniform in [0, 1) for
// floating point datatypes and 0 or 1 for the others.
type synthetic struct {
	spec  client.TensorMetadata
	shape []int64
	vals  []float64
}

// makeInputs makes up every input of a model whose metadata lists ins and
// outs, for set. Whether dimension 0 is the batch is decided as the server
// decides it from the same shapes (catalog.DetectBatch): a model with a
// scalar input, a fixed leading dimension or its batch elsewhere (a
// recurrent model's state) takes its inputs whole, with batch 1.
func makeInputs(model string, ins, outs []client.TensorMetadata, set RequirementSet, rng *rand.Rand) ([]synthetic, error) {
	if len(ins) == 0 {
		return nil, fmt.Errorf("model %s has no inputs", model)
	}
	specs := func(ts []client.TensorMetadata) []catalog.TensorSpec {
		out := make([]catalog.TensorSpec, len(ts))
		for i, t := range ts {
			out[i] = catalog.TensorSpec{Name: t.Name, DataType: t.Datatype, Shape: t.Shape}
		}
		return out
	}
	c := catalog.Contract{Inputs: specs(ins), Outputs: specs(outs)}
	c.Batched = catalog.DetectBatch(c.Inputs, c.Outputs)
	if !c.Batched && set.BatchSize() > 1 {
		described := make([]string, len(c.Inputs))
		for i, t := range c.Inputs {
			described[i] = c.Describe(t)
		}
		return nil, fmt.Errorf("model %s has no batch dimension (its inputs are %s); it takes one request's tensors whole: drop the batch of %d",
			model, strings.Join(described, ", "), set.BatchSize())
	}
	out := make([]synthetic, len(ins))
	for i, in := range ins {
		var err error
		if out[i], err = makeSynthetic(in, c.Batched, set.BatchSize(), set.Shapes[in.Name], rng); err != nil {
			return nil, fmt.Errorf("model %s: %w", model, err)
		}
	}
	return out, nil
}

// makeSynthetic fills an input of spec with values from rng: a batch of
// samples when batched (dimension 0 the batch), else the whole tensor (a
// scalar is one value). Dynamic dimensions take their size from want (the
// requirement set's shape for this input: a sample's, batch left out,
// when batched, else the whole shape; nil for none) or
// catalog.DefaultDynamicDim.
func makeSynthetic(spec client.TensorMetadata, batched bool, batch int, want []int64, rng *rand.Rand) (synthetic, error) {
	sample, elems, lead := slices.Clone(spec.Shape), 1, []int64(nil)
	if batched {
		if len(spec.Shape) == 0 {
			return synthetic{}, fmt.Errorf("input %q has no dimensions, so no batch dimension", spec.Name)
		}
		sample, elems, lead = sample[1:], batch, []int64{int64(batch)}
	}
	what := "the model's input shape"
	if batched {
		what = "a sample of the model's input shape"
	}
	if want != nil && len(want) != len(sample) {
		return synthetic{}, fmt.Errorf("input %q: %s %v has %d dimensions; the shape given, %v, has %d",
			spec.Name, what, spec.Shape, len(sample), want, len(want))
	}
	for k, d := range sample {
		switch {
		case want != nil && d > 0 && want[k] != d:
			return synthetic{}, fmt.Errorf("input %q: dimension %d of %s %v is %d; the shape given, %v, says %d",
				spec.Name, k, what, spec.Shape, d, want, want[k])
		case d <= 0 && want != nil:
			sample[k] = want[k]
		case d <= 0:
			sample[k] = catalog.DefaultDynamicDim
		}
		elems *= int(sample[k])
		if elems > 1<<26 { // checked as it grows: a product of large sizes would overflow
			return synthetic{}, fmt.Errorf("input %q: a request of %v is over %d elements; lower the batch or the shape", spec.Name, append(lead, sample...), 1<<26)
		}
	}
	floating := false
	switch spec.Datatype {
	case "FP16", "BF16", "FP32", "FP64":
		floating = true
	case "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64":
	default:
		return synthetic{}, fmt.Errorf("input %q: loadgen cannot make up %s data", spec.Name, spec.Datatype)
	}
	vals := make([]float64, elems)
	for i := range vals {
		if floating {
			vals[i] = rng.Float64()
		} else {
			vals[i] = float64(rng.IntN(2))
		}
	}
	shape := append(lead, sample...)
	if shape == nil {
		shape = []int64{} // a scalar: "shape": [], not null
	}
	return synthetic{spec: spec, shape: shape, vals: vals}, nil
}

// jsonInput is the tensor as `infaas query` sends it over HTTP: numbers in
// the JSON body.
func (s synthetic) jsonInput() (client.InferInput, error) {
	switch s.spec.Datatype {
	case "FP16", "BF16", "BOOL":
		return client.InferInput{}, fmt.Errorf("input %q is %s, which the HTTP/JSON binding does not carry as numbers; use --protocol grpc",
			s.spec.Name, s.spec.Datatype)
	}
	data := make([]float32, len(s.vals))
	for i, v := range s.vals {
		data[i] = float32(v)
	}
	return client.InferInput{Name: s.spec.Name, Shape: s.shape, Datatype: s.spec.Datatype, Data: data}, nil
}

// raw is the tensor in the protocol's raw layout: elements row-major,
// little-endian.
func (s synthetic) raw() []byte {
	le := binary.LittleEndian
	var out []byte
	for _, v := range s.vals {
		switch s.spec.Datatype {
		case "BOOL", "INT8", "UINT8":
			out = append(out, byte(v))
		case "INT16", "UINT16":
			out = le.AppendUint16(out, uint16(v))
		case "INT32", "UINT32":
			out = le.AppendUint32(out, uint32(v))
		case "INT64", "UINT64":
			out = le.AppendUint64(out, uint64(v))
		case "FP16":
			out = le.AppendUint16(out, float32ToHalf(float32(v)))
		case "BF16":
			out = le.AppendUint16(out, uint16(math.Float32bits(float32(v))>>16))
		case "FP32":
			out = le.AppendUint32(out, math.Float32bits(float32(v)))
		case "FP64":
			out = le.AppendUint64(out, math.Float64bits(v))
		}
	}
	return out
}

// float32ToHalf converts a value in [0, 1) to IEEE 754 half precision,
// truncating, with values too small for a normal half flushed to 0.
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	exp := int(b>>23&0xff) - 127 + 15
	if exp <= 0 {
		return 0
	}
	return uint16(exp)<<10 | uint16(b>>13&0x3ff)
}
