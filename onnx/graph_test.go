package onnx

import (
	"reflect"
	"testing"
)

func TestGraphInputsExcludesInitializers(t *testing.T) {
	g := tinyModel().GetGraph()
	// IR version 3 style: the weight is listed as an input too.
	g.Input = append(g.Input, NewValueInfo("W", TensorProto_FLOAT, []int64{3, 2}))
	ins := GraphInputs(g)
	if len(ins) != 1 || ins[0].GetName() != "x" {
		t.Fatalf("GraphInputs = %v, want just x", ins)
	}
	if _, ok := Initializers(g)["W"]; !ok {
		t.Fatalf("Initializers lacks W")
	}
}

func TestValueInfoTypeAndShape(t *testing.T) {
	dynamic := &ValueInfoProto{Name: "x", Type: &TypeProto{Value: &TypeProto_TensorType{TensorType: &TypeProto_Tensor{
		ElemType: int32(TensorProto_UINT8),
		Shape: &TensorShapeProto{Dim: []*TensorShapeProto_Dimension{
			{Value: &TensorShapeProto_Dimension_DimParam{DimParam: "N"}},
			{Value: &TensorShapeProto_Dimension_DimValue{DimValue: 28}},
			{}, // neither set: unknown
		}},
	}}}}
	tests := []struct {
		name      string
		value     *ValueInfoProto
		wantType  TensorProto_DataType
		wantShape []int64
		wantErr   bool
	}{
		{"built", NewValueInfo("in", TensorProto_FLOAT, []int64{-1, 1, 28, 28}), TensorProto_FLOAT, []int64{-1, 1, 28, 28}, false},
		{"symbolic and unknown dims", dynamic, TensorProto_UINT8, []int64{-1, 28, -1}, false},
		{"scalar", NewValueInfo("s", TensorProto_INT64, nil), TensorProto_INT64, []int64{}, false},
		{"no shape", &ValueInfoProto{Name: "r", Type: &TypeProto{Value: &TypeProto_TensorType{TensorType: &TypeProto_Tensor{ElemType: 1}}}}, TensorProto_FLOAT, nil, true},
		{"not a tensor", &ValueInfoProto{Name: "q", Type: &TypeProto{Value: &TypeProto_SequenceType{SequenceType: &TypeProto_Sequence{}}}}, TensorProto_UNDEFINED, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			et, _ := ElemType(tc.value)
			if et != tc.wantType {
				t.Errorf("ElemType = %s, want %s", et, tc.wantType)
			}
			shape, err := Shape(tc.value)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Shape err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(shape, tc.wantShape) {
				t.Errorf("Shape = %v, want %v", shape, tc.wantShape)
			}
		})
	}
	dims := NewValueInfo("in", TensorProto_FLOAT, []int64{-1, 5, -1}).GetType().GetTensorType().GetShape().GetDim()
	if dims[0].GetDimParam() != "batch" || dims[2].GetDimParam() != "in_dim2" {
		t.Errorf("symbolic dims named %q, %q; want batch, in_dim2", dims[0].GetDimParam(), dims[2].GetDimParam())
	}
}

func TestAttributes(t *testing.T) {
	n := NewNode("Gemm", "g", []string{"a", "b"}, []string{"y"},
		IntAttr("transB", 1), FloatAttr("alpha", 0.5), IntsAttr("perm", 1, 0), StringAttr("mode", "x"))
	tests := []struct {
		name    string
		get     func() (any, error)
		want    any
		wantErr bool
	}{
		{"int present", func() (any, error) { return AttrInt(n, "transB", 0) }, int64(1), false},
		{"int default", func() (any, error) { return AttrInt(n, "transA", 0) }, int64(0), false},
		{"float present", func() (any, error) { return AttrFloat(n, "alpha", 1) }, float32(0.5), false},
		{"float default", func() (any, error) { return AttrFloat(n, "beta", 1) }, float32(1), false},
		{"int of wrong type", func() (any, error) { return AttrInt(n, "alpha", 0) }, int64(0), true},
		{"float of wrong type", func() (any, error) { return AttrFloat(n, "perm", 0) }, float32(0), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if FindAttr(n, "mode") == nil || string(FindAttr(n, "mode").GetS()) != "x" {
		t.Errorf("FindAttr(mode) = %v", FindAttr(n, "mode"))
	}
	body := &GraphProto{Name: "body"}
	loop := NewNode("If", "if", []string{"c"}, []string{"o"}, &AttributeProto{Name: "then_branch", Type: AttributeProto_GRAPH, G: body})
	if sg := Subgraphs(loop); len(sg) != 1 || sg[0] != body {
		t.Errorf("Subgraphs = %v", sg)
	}
}
