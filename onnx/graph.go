package onnx

import (
	"fmt"
)

// GraphInputs returns the graph inputs a caller must feed: the declared inputs
// minus those that are also initializers (models with IR version < 4 list
// every weight as an input too).
func GraphInputs(g *GraphProto) []*ValueInfoProto {
	inits := make(map[string]bool, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var out []*ValueInfoProto
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] {
			out = append(out, v)
		}
	}
	return out
}

// Initializers indexes the graph's initializers by name.
func Initializers(g *GraphProto) map[string]*TensorProto {
	out := make(map[string]*TensorProto, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		out[t.GetName()] = t
	}
	return out
}

// ElemType returns the element type of a tensor-typed value, or an error if
// the value has no tensor type.
func ElemType(v *ValueInfoProto) (TensorProto_DataType, error) {
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return TensorProto_UNDEFINED, fmt.Errorf("value %q is not a tensor", v.GetName())
	}
	return TensorProto_DataType(tt.GetElemType()), nil
}

// Shape returns the shape of a tensor-typed value. Symbolic (dim_param) and
// unknown dimensions are -1. It is an error when the value is not a tensor or
// has no shape at all (unknown rank).
func Shape(v *ValueInfoProto) ([]int64, error) {
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return nil, fmt.Errorf("value %q is not a tensor", v.GetName())
	}
	if tt.GetShape() == nil {
		return nil, fmt.Errorf("value %q has no shape (unknown rank)", v.GetName())
	}
	dims := tt.GetShape().GetDim()
	out := make([]int64, len(dims))
	for i, d := range dims {
		if dv, ok := d.GetValue().(*TensorShapeProto_Dimension_DimValue); ok && dv.DimValue >= 0 {
			out[i] = dv.DimValue
		} else {
			out[i] = -1
		}
	}
	return out, nil
}

// NewValueInfo returns a tensor-typed ValueInfoProto. A negative dim becomes
// a symbolic dimension: "batch" on axis 0, "<name>_dim<i>" elsewhere.
func NewValueInfo(name string, elem TensorProto_DataType, shape []int64) *ValueInfoProto {
	dims := make([]*TensorShapeProto_Dimension, len(shape))
	for i, d := range shape {
		switch {
		case d >= 0:
			dims[i] = &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimValue{DimValue: d}}
		case i == 0:
			dims[i] = &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimParam{DimParam: "batch"}}
		default:
			dims[i] = &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimParam{DimParam: fmt.Sprintf("%s_dim%d", name, i)}}
		}
	}
	return &ValueInfoProto{
		Name: name,
		Type: &TypeProto{Value: &TypeProto_TensorType{TensorType: &TypeProto_Tensor{
			ElemType: int32(elem),
			Shape:    &TensorShapeProto{Dim: dims},
		}}},
	}
}

// NewNode returns a node of the default domain.
func NewNode(opType, name string, inputs, outputs []string, attrs ...*AttributeProto) *NodeProto {
	return &NodeProto{
		OpType:    opType,
		Name:      name,
		Input:     append([]string(nil), inputs...),
		Output:    append([]string(nil), outputs...),
		Attribute: attrs,
	}
}

// IntAttr returns an INT attribute.
func IntAttr(name string, v int64) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_INT, I: &v}
}

// FloatAttr returns a FLOAT attribute.
func FloatAttr(name string, v float32) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_FLOAT, F: &v}
}

// IntsAttr returns an INTS attribute.
func IntsAttr(name string, v ...int64) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_INTS, Ints: append([]int64(nil), v...)}
}

// StringAttr returns a STRING attribute.
func StringAttr(name, v string) *AttributeProto {
	return &AttributeProto{Name: name, Type: AttributeProto_STRING, S: []byte(v)}
}

// FindAttr returns the node's attribute with the given name, or nil.
func FindAttr(n *NodeProto, name string) *AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// AttrInt returns the node's INT attribute name, or def when it is absent.
// An attribute of another type is an error.
func AttrInt(n *NodeProto, name string, def int64) (int64, error) {
	a := FindAttr(n, name)
	if a == nil {
		return def, nil
	}
	if a.GetType() != AttributeProto_INT && !(a.GetType() == AttributeProto_UNDEFINED && a.I != nil) {
		return 0, fmt.Errorf("node %q attribute %q has type %s, want INT", n.GetName(), name, a.GetType())
	}
	return a.GetI(), nil
}

// AttrFloat returns the node's FLOAT attribute name, or def when it is absent.
// An attribute of another type is an error.
func AttrFloat(n *NodeProto, name string, def float32) (float32, error) {
	a := FindAttr(n, name)
	if a == nil {
		return def, nil
	}
	if a.GetType() != AttributeProto_FLOAT && !(a.GetType() == AttributeProto_UNDEFINED && a.F != nil) {
		return 0, fmt.Errorf("node %q attribute %q has type %s, want FLOAT", n.GetName(), name, a.GetType())
	}
	return a.GetF(), nil
}

// Subgraphs returns the graphs held by a node's attributes (If branches, Loop
// and Scan bodies).
func Subgraphs(n *NodeProto) []*GraphProto {
	var out []*GraphProto
	for _, a := range n.GetAttribute() {
		if a.GetG() != nil {
			out = append(out, a.GetG())
		}
		out = append(out, a.GetGraphs()...)
	}
	return out
}
