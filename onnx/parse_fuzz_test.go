package onnx

import (
	"testing"
)

// FuzzParse: parsing a user's ONNX file returns a model or an error on any
// bytes, never panics.
func FuzzParse(f *testing.F) {
	g := &GraphProto{Name: "g",
		Input:       []*ValueInfoProto{NewValueInfo("x", TensorProto_FLOAT, []int64{-1, 4})},
		Output:      []*ValueInfoProto{NewValueInfo("y", TensorProto_FLOAT, []int64{-1, 3})},
		Initializer: []*TensorProto{NewFloatTensor("w", []int64{4, 3}, make([]float32, 12))},
		Node:        []*NodeProto{NewNode("MatMul", "mm", []string{"x", "w"}, []string{"y"})},
	}
	seed, err := Marshal(&ModelProto{IrVersion: 8, OpsetImport: []*OperatorSetIdProto{{Domain: "", Version: 13}}, Graph: g})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/3])
	f.Add([]byte("not onnx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b)
	})
}
