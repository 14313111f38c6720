package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Contract is a model's tensor contract: every input and output with its
// name, datatype and shape (-1 for a dynamic dimension), in the model's
// order, and whether dimension 0 of every input and output is the batch.
//
// A batched contract lets infaas put several requests into one run: their
// inputs are concatenated along dimension 0 and each output is split back
// along it, so requests in one batch must agree on every other dimension.
// An unbatched contract (a model with a scalar input, fixed leading
// dimensions, or outputs that do not follow the batch) is served one
// request at a time, and each request states the whole shape.
type Contract struct {
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
	Batched bool         `json:"batched"`
}

// ErrContract is wrapped by contract errors: a model infaas cannot serve as
// it is, or two contracts that do not agree.
var ErrContract = errors.New("tensor contract")

// Sample is t's shape without the batch dimension when the contract is
// batched, else its whole shape.
func (c Contract) Sample(t TensorSpec) []int64 {
	if c.Batched && len(t.Shape) > 0 {
		return t.Shape[1:]
	}
	return t.Shape
}

// FixedBatch is the batch size a batched model's inputs fix (a model
// exported with batch 1 takes only 1), or 0 when the batch is dynamic.
func (c Contract) FixedBatch() int {
	if !c.Batched || len(c.Inputs) == 0 || len(c.Inputs[0].Shape) == 0 {
		return 0
	}
	return int(max(c.Inputs[0].Shape[0], 0))
}

// Static reports whether every input's shape is fixed apart from the batch
// dimension: requests then never differ but in their batch size.
func (c Contract) Static() bool {
	for _, t := range c.Inputs {
		if Elements(c.Sample(t)) < 0 {
			return false
		}
	}
	return true
}

// InputIndex is the position of the input named name, or -1.
func (c Contract) InputIndex(name string) int {
	return slices.IndexFunc(c.Inputs, func(t TensorSpec) bool { return t.Name == name })
}

// OutputIndex is the position of the output named name, or -1.
func (c Contract) OutputIndex(name string) int {
	return slices.IndexFunc(c.Outputs, func(t TensorSpec) bool { return t.Name == name })
}

// Names lists the tensors' names, for messages.
func Names(ts []TensorSpec) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = fmt.Sprintf("%q", t.Name)
	}
	return strings.Join(names, ", ")
}

// Describe writes a tensor as "name FP32 [batch, 3, -1, -1]".
func (c Contract) Describe(t TensorSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q %s [", t.Name, t.DataType)
	for i, d := range t.Shape {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case i == 0 && c.Batched:
			b.WriteString("batch")
		case d < 0 && i < len(t.DimNames) && t.DimNames[i] != "":
			b.WriteString(t.DimNames[i])
		default:
			fmt.Fprint(&b, d)
		}
	}
	b.WriteString("]")
	return b.String()
}

// Classes is the number of classes when the first output is FP32 scores
// [batch, classes] of a batched contract, else 0.
func (c Contract) Classes() int {
	if !c.Batched || len(c.Outputs) == 0 {
		return 0
	}
	o := c.Outputs[0]
	if o.DataType != "FP32" || len(o.Shape) != 2 || o.Shape[1] <= 0 {
		return 0
	}
	return int(o.Shape[1])
}

// Compatible says whether an architecture with contract other may serve a
// use case whose contract is c: the same number of inputs and outputs,
// position by position the same datatype and the same shape apart from
// the batch dimension, and both batched or neither. Names may differ: a
// query names the use case's tensors and each architecture gets them by
// position. The error wraps ErrContract and says what differs.
func (c Contract) Compatible(other Contract) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrContract, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Batched != other.Batched:
		return bad("one contract has a batch dimension and the other does not")
	case len(c.Inputs) != len(other.Inputs):
		return bad("%d inputs (%s) against %d (%s)", len(c.Inputs), Names(c.Inputs), len(other.Inputs), Names(other.Inputs))
	case len(c.Outputs) != len(other.Outputs):
		return bad("%d outputs (%s) against %d (%s)", len(c.Outputs), Names(c.Outputs), len(other.Outputs), Names(other.Outputs))
	}
	check := func(kind string, a, b []TensorSpec) error {
		for i := range a {
			if a[i].DataType != b[i].DataType || !slices.Equal(c.Sample(a[i]), other.Sample(b[i])) {
				return bad("%s %d is %s here but %s in the other", kind, i, c.Describe(a[i]), other.Describe(b[i]))
			}
		}
		return nil
	}
	if err := check("input", c.Inputs, other.Inputs); err != nil {
		return err
	}
	return check("output", c.Outputs, other.Outputs)
}

// Renamed lists, for messages, the positions where other names a tensor
// differently from c ("input 0 \"x\" is \"pixels\" here"), or nil.
func (c Contract) Renamed(other Contract) []string {
	var out []string
	for i := range min(len(c.Inputs), len(other.Inputs)) {
		if c.Inputs[i].Name != other.Inputs[i].Name {
			out = append(out, fmt.Sprintf("input %d %q is %q in the use case", i, other.Inputs[i].Name, c.Inputs[i].Name))
		}
	}
	for i := range min(len(c.Outputs), len(other.Outputs)) {
		if c.Outputs[i].Name != other.Outputs[i].Name {
			out = append(out, fmt.Sprintf("output %d %q is %q in the use case", i, other.Outputs[i].Name, c.Outputs[i].Name))
		}
	}
	return out
}

// Elements is the number of elements of shape, or -1 when a dimension is
// dynamic (negative).
func Elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// DetectBatch decides whether dimension 0 of a model's tensors is the
// batch: every input and output has one, the inputs' are dynamic and share
// one symbol (or have none), and the outputs' are dynamic too — or all of
// them are fixed at 1 (a model exported with batch 1). Anything else (a
// scalar input, a fixed leading dimension above 1, an output whose leading
// dimension is not the batch) is an unbatched model.
func DetectBatch(inputs, outputs []TensorSpec) bool {
	if len(inputs) == 0 || len(outputs) == 0 {
		return false
	}
	lead := func(t TensorSpec) (int64, string, bool) {
		if len(t.Shape) == 0 {
			return 0, "", false
		}
		name := ""
		if len(t.DimNames) > 0 {
			name = t.DimNames[0]
		}
		return t.Shape[0], name, true
	}
	d0, sym, ok := lead(inputs[0])
	if !ok || (d0 >= 0 && d0 != 1) {
		return false
	}
	for _, t := range append(slices.Clip(inputs), outputs...) {
		d, s, ok := lead(t)
		if !ok {
			return false
		}
		if d0 == 1 {
			if d != 1 {
				return false
			}
			continue
		}
		if d >= 0 {
			return false
		}
		// Inputs share the batch symbol; an output may be unnamed or
		// named like it (exporters often invent names for outputs).
		if s != sym && s != "" && sym != "" {
			return false
		}
	}
	return true
}

// legacyIO is how contracts were stored before they held many tensors:
// one input and one output, always batched.
type legacyIO struct {
	Input  *TensorSpec `json:"input"`
	Output *TensorSpec `json:"output"`
}

func (l legacyIO) upgrade(c *Contract) {
	if len(c.Inputs) > 0 || l.Input == nil {
		return
	}
	c.Inputs = []TensorSpec{*l.Input}
	if l.Output != nil {
		c.Outputs = []TensorSpec{*l.Output}
	}
	c.Batched = true
}

// UnmarshalJSON reads an architecture, upgrading a record written when a
// contract had one input and one output.
func (a *Architecture) UnmarshalJSON(b []byte) error {
	type plain Architecture
	var l legacyIO
	if err := json.Unmarshal(b, (*plain)(a)); err != nil {
		return err
	}
	if len(a.Inputs) == 0 {
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		l.upgrade(&a.Contract)
	}
	return nil
}

// UnmarshalJSON reads a use case, upgrading an old record as Architecture
// does.
func (u *UseCase) UnmarshalJSON(b []byte) error {
	type plain UseCase
	var l legacyIO
	if err := json.Unmarshal(b, (*plain)(u)); err != nil {
		return err
	}
	if len(u.Inputs) == 0 {
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		l.upgrade(&u.Contract)
	}
	return nil
}

// DefaultDynamicDim is the size the profiler and the fidelity check give a
// dynamic dimension that the architecture's ProfileShapes do not pin.
const DefaultDynamicDim = 32

// ProfileShape is the shape input i is profiled with, for batch samples
// (batch ignored when the contract is unbatched): the contract's shape
// with every dynamic dimension taken from ProfileShapes, or
// DefaultDynamicDim.
func (a Architecture) ProfileShape(i, batch int) []int64 {
	t := a.Inputs[i]
	sample := slices.Clone(a.Sample(t))
	pinned := a.ProfileShapes[t.Name]
	for k, d := range sample {
		if d >= 0 {
			continue
		}
		sample[k] = DefaultDynamicDim
		if len(pinned) == len(sample) && pinned[k] > 0 {
			sample[k] = pinned[k]
		}
	}
	if !a.Batched {
		return sample
	}
	return append([]int64{int64(batch)}, sample...)
}

// CheckShape says whether shape fits spec's contract shape: the same rank
// and every fixed dimension equal (the batch dimension is checked by the
// caller). It returns a message naming what was expected, or "".
func (c Contract) CheckShape(spec TensorSpec, shape []int64) string {
	if len(shape) != len(spec.Shape) {
		return fmt.Sprintf("has %d dimensions %v; %s has %d", len(shape), shape, c.Describe(spec), len(spec.Shape))
	}
	for k, d := range shape {
		if k == 0 && c.Batched {
			continue
		}
		if d < 0 || (spec.Shape[k] >= 0 && d != spec.Shape[k]) {
			return fmt.Sprintf("has shape %v; dimension %d must be %s (the contract is %s)", shape, k, dimWant(spec, k), c.Describe(spec))
		}
	}
	return ""
}

func dimWant(spec TensorSpec, k int) string {
	if spec.Shape[k] >= 0 {
		return fmt.Sprint(spec.Shape[k])
	}
	return "at least 0"
}

// UseCaseOf derives the use case an architecture founds: its contract
// with a dynamic batch dimension, and a single input named "input" (as
// every single-input use case's is, so clients need not know which
// architecture came first). Other tensors keep the architecture's names.
func UseCaseOf(a Architecture) UseCase {
	c := Contract{Batched: a.Batched}
	for _, t := range a.Inputs {
		c.Inputs = append(c.Inputs, useCaseTensor(t, a.Batched))
	}
	for _, t := range a.Outputs {
		c.Outputs = append(c.Outputs, useCaseTensor(t, a.Batched))
	}
	if len(c.Inputs) == 1 {
		c.Inputs[0].Name = "input"
	}
	return UseCase{Task: a.Task, Dataset: a.Dataset, Contract: c, Classes: a.Classes()}
}

func useCaseTensor(t TensorSpec, batched bool) TensorSpec {
	t.Shape = slices.Clone(t.Shape)
	if batched && len(t.Shape) > 0 {
		t.Shape[0] = -1
	}
	return t
}
