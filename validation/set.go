package validation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/infaas/infaas/catalog"
)

// ErrMismatch is returned when validation data does not fit the model.
var ErrMismatch = errors.New("validation data does not match the model")

// Set is a labelled validation set in the use case's raw input domain.
type Set struct {
	N          int       // samples
	SampleSize int       // values per sample
	Inputs     []float64 // N*SampleSize raw values
	Labels     []int
}

// Load decodes inputs and labels (both IDX) and checks they agree.
func Load(inputs, labels []byte) (*Set, error) {
	in, err := ParseIDX(inputs)
	if err != nil {
		return nil, fmt.Errorf("validation inputs: %w", err)
	}
	lb, err := ParseIDX(labels)
	if err != nil {
		return nil, fmt.Errorf("validation labels: %w", err)
	}
	if len(lb.Dims) != 1 {
		return nil, fmt.Errorf("%w: labels must be one-dimensional [N], got dims %v", ErrMismatch, lb.Dims)
	}
	if in.Dims[0] != lb.Dims[0] {
		return nil, fmt.Errorf("%w: %d inputs but %d labels", ErrMismatch, in.Dims[0], lb.Dims[0])
	}
	s := &Set{N: in.Dims[0], SampleSize: len(in.Values) / in.Dims[0], Inputs: in.Values, Labels: make([]int, lb.Dims[0])}
	for i, v := range lb.Values {
		if v != math.Trunc(v) || v < 0 {
			return nil, fmt.Errorf("%w: label %d is %v; labels must be class indices 0, 1, 2, ...", ErrMismatch, i, v)
		}
		s.Labels[i] = int(v)
	}
	return s, nil
}

// Check verifies the set fits a model's contract: one FP32 input whose
// sample has SampleSize values, and a first output of class scores with a
// class for every label.
func (s *Set) Check(c catalog.Contract) error {
	if len(c.Inputs) != 1 || !c.Batched {
		return fmt.Errorf("%w: validation data (IDX inputs and labels) fits a batched model with one input; this one takes %s%s — declare an accuracy instead",
			ErrMismatch, catalog.Names(c.Inputs), map[bool]string{true: "", false: " without a batch dimension"}[c.Batched])
	}
	in := c.Inputs[0]
	if want := catalog.Elements(c.Sample(in)); want > 0 && int64(s.SampleSize) != want {
		return fmt.Errorf("%w: each validation sample has %d values but the model's input %q takes %d per sample (shape %v)",
			ErrMismatch, s.SampleSize, in.Name, want, in.Shape)
	}
	if catalog.Elements(c.Sample(in)) < 0 {
		return fmt.Errorf("%w: the model's input %s has dynamic dimensions; IDX validation samples need a fixed shape (pin it with shapes)", ErrMismatch, c.Describe(in))
	}
	if in.DataType != "FP32" {
		return fmt.Errorf("%w: validation needs a model with an FP32 input; %q is %s", ErrMismatch, in.Name, in.DataType)
	}
	classes := c.Classes()
	if classes <= 0 {
		return fmt.Errorf("%w: the model's first output %s is not FP32 [batch, classes]; accuracy is measured as top-1 over class scores",
			ErrMismatch, c.Describe(c.Outputs[0]))
	}
	for i, l := range s.Labels {
		if l >= classes {
			return fmt.Errorf("%w: label %d of sample %d is out of range: the model's output %q has %d classes (0–%d)",
				ErrMismatch, l, i, c.Outputs[0].Name, classes, classes-1)
		}
	}
	return nil
}

// FP32 returns the inputs as little-endian float32 bytes, multiplied by
// scale (the architecture's declared preprocessing).
func (s *Set) FP32(scale float64) []byte {
	out := make([]byte, 4*len(s.Inputs))
	for i, v := range s.Inputs {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(v*scale)))
	}
	return out
}
