package onnx

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/infaas/infaas/onnx/onnxtest"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// tinyModel is y = Relu(x · W) with x [batch, 3] and W a [3, 2] initializer.
func tinyModel() *ModelProto {
	return &ModelProto{
		IrVersion:    8,
		ProducerName: "infaas-test",
		OpsetImport:  []*OperatorSetIdProto{{Domain: "", Version: 13}},
		Graph: &GraphProto{
			Name: "tiny",
			Node: []*NodeProto{
				NewNode("MatMul", "mm", []string{"x", "W"}, []string{"h"}),
				NewNode("Relu", "relu", []string{"h"}, []string{"y"}),
			},
			Initializer: []*TensorProto{NewFloatTensor("W", []int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})},
			Input:       []*ValueInfoProto{NewValueInfo("x", TensorProto_FLOAT, []int64{-1, 3})},
			Output:      []*ValueInfoProto{NewValueInfo("y", TensorProto_FLOAT, []int64{-1, 2})},
		},
	}
}

func mustMarshal(t *testing.T, m *ModelProto) []byte {
	t.Helper()
	b, err := Marshal(m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

func TestParseRejectsNonModels(t *testing.T) {
	random := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(random)

	edit := func(f func(m *ModelProto)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			m := tinyModel()
			f(m)
			b, err := proto.Marshal(m) // not Marshal: some edits are invalid models
			if err != nil {
				t.Fatalf("proto.Marshal: %v", err)
			}
			return b
		}
	}
	raw := func(b []byte) func(t *testing.T) []byte { return func(*testing.T) []byte { return b } }

	tests := []struct {
		name  string
		bytes func(t *testing.T) []byte
	}{
		{"empty", raw(nil)},
		{"text", raw([]byte("this is not an onnx model, just some text\n"))},
		{"random bytes", raw(random)},
		{"json", raw([]byte(`{"ir_version": 8, "graph": {}}`))},
		{"png header", raw([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))},
		{"wrong message (a bare TensorProto)", func(t *testing.T) []byte {
			b, err := proto.Marshal(NewFloatTensor("w", []int64{2}, []float32{1, 2}))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"no ir_version", edit(func(m *ModelProto) { m.IrVersion = 0 })},
		{"absurd ir_version", edit(func(m *ModelProto) { m.IrVersion = 1 << 40 })},
		{"no graph", edit(func(m *ModelProto) { m.Graph = nil })},
		{"no nodes", edit(func(m *ModelProto) { m.Graph.Node = nil })},
		{"no inputs", edit(func(m *ModelProto) { m.Graph.Input = nil })},
		{"no outputs", edit(func(m *ModelProto) { m.Graph.Output = nil })},
		{"node without op_type", edit(func(m *ModelProto) { m.Graph.Node[1].OpType = "" })},
		{"unnamed output", edit(func(m *ModelProto) { m.Graph.Output[0].Name = "" })},
		{"only unknown fields", raw(protowire.AppendBytes(protowire.AppendTag(nil, 1000, protowire.BytesType), []byte("x")))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.bytes(t))
			if err == nil {
				t.Fatalf("Parse accepted a non-model: %v", m)
			}
			if !errors.Is(err, ErrNotONNX) {
				t.Fatalf("Parse error %q does not wrap ErrNotONNX", err)
			}
		})
	}
}

func TestParseMarshalRoundTrip(t *testing.T) {
	b := mustMarshal(t, tinyModel())
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !proto.Equal(m, tinyModel()) {
		t.Fatalf("round trip changed the model:\n got %v\nwant %v", m, tinyModel())
	}
	again := mustMarshal(t, m)
	if !bytes.Equal(b, again) {
		t.Fatalf("Marshal is not deterministic: %d vs %d bytes", len(b), len(again))
	}
}

// Fields this package does not declare (here: ModelProto.configuration = 26
// and NodeProto.device_configurations = 10, both real ONNX fields) must survive
// Parse + Marshal byte for byte.
func TestUnknownFieldsSurvive(t *testing.T) {
	m := tinyModel()
	nodeExtra := protowire.AppendBytes(protowire.AppendTag(nil, 10, protowire.BytesType), []byte("\x0a\x03cfg"))
	m.Graph.Node[0].ProtoReflect().SetUnknown(nodeExtra)
	modelExtra := protowire.AppendBytes(protowire.AppendTag(nil, 26, protowire.BytesType), []byte("\x0a\x04mesh\x10\x02"))
	b := append(mustMarshal(t, m), modelExtra...)

	parsed, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out := mustMarshal(t, parsed)
	for name, want := range map[string][]byte{"ModelProto.configuration": modelExtra, "NodeProto.device_configurations": nodeExtra} {
		if !bytes.Contains(out, want) {
			t.Errorf("%s was dropped by Parse+Marshal", name)
		}
	}
	if got := parsed.GetGraph().GetNode()[0].ProtoReflect().GetUnknown(); !bytes.Equal(got, nodeExtra) {
		t.Errorf("node unknown fields = %x, want %x", got, nodeExtra)
	}
}

// The declared field numbers must be the official ONNX ones; a typo here would
// silently misread every real model. The table is transcribed from the
// official onnx/onnx.proto.
func TestFieldNumbersMatchOfficialSchema(t *testing.T) {
	tests := []struct {
		msg    protoreflect.ProtoMessage
		fields map[string]protoreflect.FieldNumber
	}{
		{&ModelProto{}, map[string]protoreflect.FieldNumber{
			"ir_version": 1, "producer_name": 2, "producer_version": 3, "domain": 4, "model_version": 5,
			"doc_string": 6, "graph": 7, "opset_import": 8, "metadata_props": 14, "training_info": 20, "functions": 25}},
		{&GraphProto{}, map[string]protoreflect.FieldNumber{
			"node": 1, "name": 2, "initializer": 5, "doc_string": 10, "input": 11, "output": 12, "value_info": 13,
			"quantization_annotation": 14, "sparse_initializer": 15, "metadata_props": 16}},
		{&NodeProto{}, map[string]protoreflect.FieldNumber{
			"input": 1, "output": 2, "name": 3, "op_type": 4, "attribute": 5, "doc_string": 6, "domain": 7,
			"overload": 8, "metadata_props": 9}},
		{&AttributeProto{}, map[string]protoreflect.FieldNumber{
			"name": 1, "f": 2, "i": 3, "s": 4, "t": 5, "g": 6, "floats": 7, "ints": 8, "strings": 9, "tensors": 10,
			"graphs": 11, "doc_string": 13, "tp": 14, "type_protos": 15, "type": 20, "ref_attr_name": 21,
			"sparse_tensor": 22, "sparse_tensors": 23}},
		{&TensorProto{}, map[string]protoreflect.FieldNumber{
			"dims": 1, "data_type": 2, "segment": 3, "float_data": 4, "int32_data": 5, "string_data": 6,
			"int64_data": 7, "name": 8, "raw_data": 9, "double_data": 10, "uint64_data": 11, "doc_string": 12,
			"external_data": 13, "data_location": 14, "metadata_props": 16}},
		{&ValueInfoProto{}, map[string]protoreflect.FieldNumber{"name": 1, "type": 2, "doc_string": 3, "metadata_props": 4}},
		{&TypeProto{}, map[string]protoreflect.FieldNumber{
			"tensor_type": 1, "sequence_type": 4, "map_type": 5, "denotation": 6, "opaque_type": 7,
			"sparse_tensor_type": 8, "optional_type": 9}},
		{&TypeProto_Tensor{}, map[string]protoreflect.FieldNumber{"elem_type": 1, "shape": 2}},
		{&TensorShapeProto_Dimension{}, map[string]protoreflect.FieldNumber{"dim_value": 1, "dim_param": 2, "denotation": 3}},
		{&OperatorSetIdProto{}, map[string]protoreflect.FieldNumber{"domain": 1, "version": 2}},
		{&SparseTensorProto{}, map[string]protoreflect.FieldNumber{"values": 1, "indices": 2, "dims": 3}},
		{&FunctionProto{}, map[string]protoreflect.FieldNumber{
			"name": 1, "input": 4, "output": 5, "attribute": 6, "node": 7, "doc_string": 8, "opset_import": 9,
			"domain": 10, "attribute_proto": 11, "value_info": 12, "overload": 13, "metadata_props": 14}},
	}
	for _, tc := range tests {
		md := tc.msg.ProtoReflect().Descriptor()
		t.Run(string(md.Name()), func(t *testing.T) {
			for name, want := range tc.fields {
				fd := md.Fields().ByName(protoreflect.Name(name))
				if fd == nil {
					t.Errorf("field %s missing", name)
					continue
				}
				if fd.Number() != want {
					t.Errorf("field %s has number %d, want %d", name, fd.Number(), want)
				}
			}
		})
	}

	dataTypes := map[TensorProto_DataType]int32{
		TensorProto_FLOAT: 1, TensorProto_UINT8: 2, TensorProto_INT8: 3, TensorProto_INT32: 6, TensorProto_INT64: 7,
		TensorProto_STRING: 8, TensorProto_BOOL: 9, TensorProto_FLOAT16: 10, TensorProto_DOUBLE: 11,
		TensorProto_BFLOAT16: 16, TensorProto_INT4: 22, TensorProto_FLOAT8E8M0: 24,
	}
	for dt, want := range dataTypes {
		if int32(dt) != want {
			t.Errorf("DataType %s = %d, want %d", dt, int32(dt), want)
		}
	}
	attrTypes := map[AttributeProto_AttributeType]int32{
		AttributeProto_FLOAT: 1, AttributeProto_INT: 2, AttributeProto_STRING: 3, AttributeProto_TENSOR: 4,
		AttributeProto_GRAPH: 5, AttributeProto_FLOATS: 6, AttributeProto_INTS: 7, AttributeProto_SPARSE_TENSOR: 11,
		AttributeProto_TYPE_PROTO: 13, AttributeProto_TYPE_PROTOS: 14,
	}
	for at, want := range attrTypes {
		if int32(at) != want {
			t.Errorf("AttributeType %s = %d, want %d", at, int32(at), want)
		}
	}
}

// An explicit zero attribute (transB = 0, say) must be on the wire: ONNX
// Runtime rejects an INT attribute without a value.
func TestZeroAttributeIsSerialized(t *testing.T) {
	b, err := proto.Marshal(IntAttr("transB", 0))
	if err != nil {
		t.Fatal(err)
	}
	var back AttributeProto
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.I == nil {
		t.Fatalf("IntAttr(0) lost its value on the wire (%x)", b)
	}
}

// mnist-8 is the ONNX model zoo's MNIST CNN, written by another toolchain
// (CNTK via the C++ protobuf runtime). Every field in it must be known to this
// schema and survive a round trip.
func TestParseRealModel(t *testing.T) {
	path := filepath.Join(onnxtest.RepoRoot(t), "zoo", "models", "mnist-8.onnx")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (the committed model zoo file): %v", path, err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	if got := OpsetVersion(m, ""); got != 7 {
		t.Errorf("opset = %d, want 7", got)
	}
	ins := GraphInputs(m.GetGraph())
	if len(ins) != 1 || ins[0].GetName() != "Input3" {
		t.Fatalf("GraphInputs = %v, want just Input3", ins)
	}
	shape, err := Shape(ins[0])
	if err != nil || len(shape) != 4 || shape[1] != 1 || shape[2] != 28 || shape[3] != 28 {
		t.Errorf("Input3 shape = %v, %v; want [1 1 28 28]", shape, err)
	}
	if et, _ := ElemType(ins[0]); et != TensorProto_FLOAT {
		t.Errorf("Input3 elem type = %s, want FLOAT", et)
	}
	var unknown int
	var walk func(protoreflect.Message)
	walk = func(msg protoreflect.Message) {
		unknown += len(msg.GetUnknown())
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(m.ProtoReflect())
	if unknown != 0 {
		t.Errorf("mnist-8 has %d bytes of fields unknown to onnx.proto", unknown)
	}
	for _, init := range m.GetGraph().GetInitializer() {
		if DataType(init) == TensorProto_FLOAT {
			if _, err := TensorFloats(init); err != nil {
				t.Errorf("TensorFloats(%s): %v", init.GetName(), err)
			}
		}
	}
	back, err := Parse(mustMarshal(t, m))
	if err != nil {
		t.Fatalf("Parse(Marshal(mnist-8)): %v", err)
	}
	if !proto.Equal(back, m) {
		t.Fatalf("mnist-8 changed in a round trip")
	}
}

func TestOpsetVersion(t *testing.T) {
	tests := []struct {
		name    string
		imports []*OperatorSetIdProto
		domain  string
		want    int64
	}{
		{"empty domain", []*OperatorSetIdProto{{Domain: "", Version: 13}}, "", 13},
		{"ai.onnx alias", []*OperatorSetIdProto{{Domain: "", Version: 13}}, "ai.onnx", 13},
		{"explicit ai.onnx", []*OperatorSetIdProto{{Domain: "ai.onnx", Version: 9}}, "", 9},
		{"other domain", []*OperatorSetIdProto{{Domain: "com.microsoft", Version: 1}}, "", 0},
		{"none", nil, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := OpsetVersion(&ModelProto{OpsetImport: tc.imports}, tc.domain); got != tc.want {
				t.Fatalf("OpsetVersion = %d, want %d", got, tc.want)
			}
		})
	}
	m := &ModelProto{OpsetImport: []*OperatorSetIdProto{{Domain: "com.microsoft", Version: 1}}}
	SetOpsetVersion(m, "ai.onnx", 11)
	if got := OpsetVersion(m, ""); got != 11 || m.OpsetImport[1].GetDomain() != "" {
		t.Fatalf("SetOpsetVersion added %v", m.OpsetImport)
	}
	SetOpsetVersion(m, "", 13)
	if got := OpsetVersion(m, ""); got != 13 || len(m.OpsetImport) != 2 {
		t.Fatalf("SetOpsetVersion updated to %v", m.OpsetImport)
	}
}
