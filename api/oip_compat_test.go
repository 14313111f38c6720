package api

// Wire compatibility with the published Open Inference Protocol.
//
// inferencepb is generated from infaas's own inference.proto. These tests
// prove that it is the protocol clients speak, without trusting it:
//
//  1. publishedSpec below transcribes the published schema (package,
//     service, methods, every message, field name, number, type, label,
//     map and oneof) from github.com/kserve/open-inference-protocol,
//     specification/protocol/open_inference_grpc.proto, written separately
//     from inference.proto. TestInferenceProtoMatchesPublishedSpec compares
//     inferencepb's compiled descriptor with it, both ways.
//
//  2. TestPublishedSchemaClient builds a client from that descriptor alone:
//     requests and responses are dynamicpb messages, marshalled by their
//     field numbers, sent with grpc.ClientConn.Invoke to the method path the
//     descriptor names. It shares no generated code with the server, so
//     every request that reaches the fake backend intact and every response
//     it decodes crossed the wire in the published format. dynamicpb
//     registers nothing, so both schemas live in one test binary without
//     protobuf-go's duplicate-registration panic.
//
//  3. To check against the published file itself rather than the
//     transcription, point INFAAS_OIP_PUBLISHED_PROTO at a copy of
//     open_inference_grpc.proto: both tests then also run with the
//     descriptor protoc compiles from it (protoc must be on PATH), and the
//     transcription is compared with it too. The file is not kept in the
//     repository.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	pb "github.com/infaas/infaas/api/inferencepb"
)

// envPublishedProto names a copy of the published .proto to test against.
const envPublishedProto = "INFAAS_OIP_PUBLISHED_PROTO"

type specField struct {
	name   string
	number int32
	typ    string // a scalar or a message name, with "repeated ", "map<string, ...>" or "oneof <name> "
}

type specMessage struct {
	name   string // nested messages as "Outer.Inner", after their parent
	fields []specField
}

// publishedSpec: the schema of open_inference_grpc.proto (kserve/
// open-inference-protocol, specification/protocol), field by field.
var publishedSpec = struct {
	pkg, service string
	methods      [][3]string // name, input, output
	messages     []specMessage
}{
	pkg:     "inference",
	service: "GRPCInferenceService",
	methods: [][3]string{
		{"ServerLive", "ServerLiveRequest", "ServerLiveResponse"},
		{"ServerReady", "ServerReadyRequest", "ServerReadyResponse"},
		{"ModelReady", "ModelReadyRequest", "ModelReadyResponse"},
		{"ServerMetadata", "ServerMetadataRequest", "ServerMetadataResponse"},
		{"ModelMetadata", "ModelMetadataRequest", "ModelMetadataResponse"},
		{"ModelInfer", "ModelInferRequest", "ModelInferResponse"},
	},
	messages: []specMessage{
		{"ServerLiveRequest", nil},
		{"ServerLiveResponse", []specField{{"live", 1, "bool"}}},
		{"ServerReadyRequest", nil},
		{"ServerReadyResponse", []specField{{"ready", 1, "bool"}}},
		{"ModelReadyRequest", []specField{{"name", 1, "string"}, {"version", 2, "string"}}},
		{"ModelReadyResponse", []specField{{"ready", 1, "bool"}}},
		{"ServerMetadataRequest", nil},
		{"ServerMetadataResponse", []specField{{"name", 1, "string"}, {"version", 2, "string"}, {"extensions", 3, "repeated string"}}},
		{"ModelMetadataRequest", []specField{{"name", 1, "string"}, {"version", 2, "string"}}},
		{"ModelMetadataResponse", []specField{
			{"name", 1, "string"},
			{"versions", 2, "repeated string"},
			{"platform", 3, "string"},
			{"inputs", 4, "repeated ModelMetadataResponse.TensorMetadata"},
			{"outputs", 5, "repeated ModelMetadataResponse.TensorMetadata"},
		}},
		{"ModelMetadataResponse.TensorMetadata", []specField{{"name", 1, "string"}, {"datatype", 2, "string"}, {"shape", 3, "repeated int64"}}},
		{"ModelInferRequest", []specField{
			{"model_name", 1, "string"},
			{"model_version", 2, "string"},
			{"id", 3, "string"},
			{"parameters", 4, "map<string, InferParameter>"},
			{"inputs", 5, "repeated ModelInferRequest.InferInputTensor"},
			{"outputs", 6, "repeated ModelInferRequest.InferRequestedOutputTensor"},
			{"raw_input_contents", 7, "repeated bytes"},
		}},
		{"ModelInferRequest.InferInputTensor", []specField{
			{"name", 1, "string"},
			{"datatype", 2, "string"},
			{"shape", 3, "repeated int64"},
			{"parameters", 4, "map<string, InferParameter>"},
			{"contents", 5, "InferTensorContents"},
		}},
		{"ModelInferRequest.InferRequestedOutputTensor", []specField{
			{"name", 1, "string"},
			{"parameters", 2, "map<string, InferParameter>"},
		}},
		{"ModelInferResponse", []specField{
			{"model_name", 1, "string"},
			{"model_version", 2, "string"},
			{"id", 3, "string"},
			{"parameters", 4, "map<string, InferParameter>"},
			{"outputs", 5, "repeated ModelInferResponse.InferOutputTensor"},
			{"raw_output_contents", 6, "repeated bytes"},
		}},
		{"ModelInferResponse.InferOutputTensor", []specField{
			{"name", 1, "string"},
			{"datatype", 2, "string"},
			{"shape", 3, "repeated int64"},
			{"parameters", 4, "map<string, InferParameter>"},
			{"contents", 5, "InferTensorContents"},
		}},
		{"InferParameter", []specField{
			{"bool_param", 1, "oneof parameter_choice bool"},
			{"int64_param", 2, "oneof parameter_choice int64"},
			{"string_param", 3, "oneof parameter_choice string"},
			{"double_param", 4, "oneof parameter_choice double"},
			{"uint64_param", 5, "oneof parameter_choice uint64"},
		}},
		{"InferTensorContents", []specField{
			{"bool_contents", 1, "repeated bool"},
			{"int_contents", 2, "repeated int32"},
			{"int64_contents", 3, "repeated int64"},
			{"uint_contents", 4, "repeated uint32"},
			{"uint64_contents", 5, "repeated uint64"},
			{"fp32_contents", 6, "repeated float"},
			{"fp64_contents", 7, "repeated double"},
			{"bytes_contents", 8, "repeated bytes"},
		}},
	},
}

var specScalars = map[string]descriptorpb.FieldDescriptorProto_Type{
	"bool": descriptorpb.FieldDescriptorProto_TYPE_BOOL, "string": descriptorpb.FieldDescriptorProto_TYPE_STRING,
	"bytes": descriptorpb.FieldDescriptorProto_TYPE_BYTES, "int32": descriptorpb.FieldDescriptorProto_TYPE_INT32,
	"int64": descriptorpb.FieldDescriptorProto_TYPE_INT64, "uint32": descriptorpb.FieldDescriptorProto_TYPE_UINT32,
	"uint64": descriptorpb.FieldDescriptorProto_TYPE_UINT64, "float": descriptorpb.FieldDescriptorProto_TYPE_FLOAT,
	"double": descriptorpb.FieldDescriptorProto_TYPE_DOUBLE,
}

// transcribedDescriptor builds a file descriptor from publishedSpec, laid
// out as protoc lays out a proto3 file (map fields as repeated
// <Field>Entry messages).
func transcribedDescriptor(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	spec := publishedSpec
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("open_inference_grpc.proto"),
		Package: proto.String(spec.pkg),
		Syntax:  proto.String("proto3"),
	}
	full := func(name string) string { return "." + spec.pkg + "." + name }
	field := func(name string, number int32, typ string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{
			Name: proto.String(name), Number: proto.Int32(number),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		}
		if k, ok := specScalars[typ]; ok {
			f.Type = k.Enum()
		} else {
			f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
			f.TypeName = proto.String(full(typ))
		}
		return f
	}
	byName := map[string]*descriptorpb.DescriptorProto{}
	for _, m := range spec.messages {
		d := &descriptorpb.DescriptorProto{Name: proto.String(m.name[strings.LastIndex(m.name, ".")+1:])}
		byName[m.name] = d
		if i := strings.LastIndex(m.name, "."); i >= 0 {
			parent := byName[m.name[:i]]
			parent.NestedType = append(parent.NestedType, d)
		} else {
			fdp.MessageType = append(fdp.MessageType, d)
		}
		for _, sf := range m.fields {
			typ := sf.typ
			switch {
			case strings.HasPrefix(typ, "repeated "):
				f := field(sf.name, sf.number, strings.TrimPrefix(typ, "repeated "))
				f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
				d.Field = append(d.Field, f)
			case strings.HasPrefix(typ, "map<string, "):
				value := strings.TrimSuffix(strings.TrimPrefix(typ, "map<string, "), ">")
				entry := strings.ToUpper(sf.name[:1]) + sf.name[1:] + "Entry" // protoc's name; fields here are one word
				d.NestedType = append(d.NestedType, &descriptorpb.DescriptorProto{
					Name:    proto.String(entry),
					Field:   []*descriptorpb.FieldDescriptorProto{field("key", 1, "string"), field("value", 2, value)},
					Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
				})
				f := field(sf.name, sf.number, m.name+"."+entry)
				f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
				d.Field = append(d.Field, f)
			case strings.HasPrefix(typ, "oneof "):
				parts := strings.Fields(typ) // oneof <name> <type>
				if len(d.OneofDecl) == 0 || d.OneofDecl[len(d.OneofDecl)-1].GetName() != parts[1] {
					d.OneofDecl = append(d.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String(parts[1])})
				}
				f := field(sf.name, sf.number, parts[2])
				f.OneofIndex = proto.Int32(int32(len(d.OneofDecl) - 1))
				d.Field = append(d.Field, f)
			default:
				d.Field = append(d.Field, field(sf.name, sf.number, typ))
			}
		}
	}
	svc := &descriptorpb.ServiceDescriptorProto{Name: proto.String(spec.service)}
	for _, m := range spec.methods {
		svc.Method = append(svc.Method, &descriptorpb.MethodDescriptorProto{
			Name: proto.String(m[0]), InputType: proto.String(full(m[1])), OutputType: proto.String(full(m[2])),
		})
	}
	fdp.Service = []*descriptorpb.ServiceDescriptorProto{svc}
	fd, err := protodesc.NewFile(fdp, new(protoregistry.Files))
	if err != nil {
		t.Fatalf("transcribed schema: %v", err)
	}
	return fd
}

// publishedDescriptor compiles the file named by INFAAS_OIP_PUBLISHED_PROTO
// with protoc, or returns nil when the variable is unset.
func publishedDescriptor(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	path := os.Getenv(envPublishedProto)
	if path == "" {
		return nil
	}
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Fatalf("%s is set, but protoc is not on PATH", envPublishedProto)
	}
	out := filepath.Join(t.TempDir(), "published.binpb")
	cmd := exec.Command(protoc, "-I", filepath.Dir(path), "--descriptor_set_out="+out, filepath.Base(path))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc %s: %v\n%s", path, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	fd, err := protodesc.NewFile(set.GetFile()[0], new(protoregistry.Files))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fd
}

// specDescriptors are the independent views of the published schema to
// test against: always the transcription, and the published file itself
// when INFAAS_OIP_PUBLISHED_PROTO names it.
func specDescriptors(t *testing.T) map[string]protoreflect.FileDescriptor {
	specs := map[string]protoreflect.FileDescriptor{"transcribed": transcribedDescriptor(t)}
	if fd := publishedDescriptor(t); fd != nil {
		specs["published file"] = fd
	}
	return specs
}

func TestInferenceProtoMatchesPublishedSpec(t *testing.T) {
	specs := specDescriptors(t)
	for name, spec := range specs {
		if diffs := diffSchemas(spec, pb.File_inferencepb_inference_proto); len(diffs) > 0 {
			t.Errorf("inference.proto differs from the %s schema:\n%s", name, strings.Join(diffs, "\n"))
		}
	}
	if published, ok := specs["published file"]; ok {
		if diffs := diffSchemas(published, specs["transcribed"]); len(diffs) > 0 {
			t.Errorf("the transcription differs from %s:\n%s", os.Getenv(envPublishedProto), strings.Join(diffs, "\n"))
		}
	} else {
		t.Logf("compared with the transcription only; set %s to a copy of open_inference_grpc.proto to compare with the file", envPublishedProto)
	}
}

// diffSchemas lists every difference between two schemas that a client
// could notice: package, messages and their fields (name, number, kind,
// cardinality, packing, map, message type, oneof), services and methods.
func diffSchemas(want, got protoreflect.FileDescriptor) []string {
	var diffs []string
	if want.Package() != got.Package() {
		diffs = append(diffs, fmt.Sprintf("package %s, want %s", got.Package(), want.Package()))
	}
	wantMsgs, gotMsgs := allMessages(want.Messages()), allMessages(got.Messages())
	for name, wm := range wantMsgs {
		gm, ok := gotMsgs[name]
		if !ok {
			diffs = append(diffs, "missing message "+string(name))
			continue
		}
		if wm.IsMapEntry() != gm.IsMapEntry() {
			diffs = append(diffs, fmt.Sprintf("%s: map entry %v, want %v", name, gm.IsMapEntry(), wm.IsMapEntry()))
		}
		diffs = append(diffs, diffFields(name, wm.Fields(), gm.Fields())...)
	}
	for name := range gotMsgs {
		if _, ok := wantMsgs[name]; !ok {
			diffs = append(diffs, "extra message "+string(name))
		}
	}
	if want.Services().Len() != got.Services().Len() {
		diffs = append(diffs, fmt.Sprintf("%d services, want %d", got.Services().Len(), want.Services().Len()))
	}
	for i := range want.Services().Len() {
		ws := want.Services().Get(i)
		gs := got.Services().ByName(ws.Name())
		if gs == nil {
			diffs = append(diffs, "missing service "+string(ws.FullName()))
			continue
		}
		if ws.Methods().Len() != gs.Methods().Len() {
			diffs = append(diffs, fmt.Sprintf("%s: %d methods, want %d", ws.Name(), gs.Methods().Len(), ws.Methods().Len()))
		}
		for j := range ws.Methods().Len() {
			wm := ws.Methods().Get(j)
			gm := gs.Methods().ByName(wm.Name())
			if gm == nil {
				diffs = append(diffs, "missing method "+string(wm.FullName()))
				continue
			}
			w := fmt.Sprintf("(%s) returns (%s) streaming %v/%v", wm.Input().FullName(), wm.Output().FullName(), wm.IsStreamingClient(), wm.IsStreamingServer())
			g := fmt.Sprintf("(%s) returns (%s) streaming %v/%v", gm.Input().FullName(), gm.Output().FullName(), gm.IsStreamingClient(), gm.IsStreamingServer())
			if w != g {
				diffs = append(diffs, fmt.Sprintf("%s: %s, want %s", wm.FullName(), g, w))
			}
		}
	}
	slices.Sort(diffs)
	return diffs
}

func diffFields(msg protoreflect.FullName, want, got protoreflect.FieldDescriptors) []string {
	describe := func(f protoreflect.FieldDescriptor) string {
		s := fmt.Sprintf("%s = %d: %v %v packed=%v map=%v", f.Name(), f.Number(), f.Cardinality(), f.Kind(), f.IsPacked(), f.IsMap())
		if f.Message() != nil {
			s += " " + string(f.Message().FullName())
		}
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
			s += " oneof " + string(o.Name())
		}
		return s
	}
	var diffs []string
	for i := range want.Len() {
		w := want.Get(i)
		g := got.ByNumber(w.Number())
		if g == nil {
			diffs = append(diffs, fmt.Sprintf("%s: missing field %s", msg, describe(w)))
		} else if describe(g) != describe(w) {
			diffs = append(diffs, fmt.Sprintf("%s: field %s, want %s", msg, describe(g), describe(w)))
		}
	}
	for i := range got.Len() {
		if g := got.Get(i); want.ByNumber(g.Number()) == nil {
			diffs = append(diffs, fmt.Sprintf("%s: extra field %s", msg, describe(g)))
		}
	}
	return diffs
}

func allMessages(ms protoreflect.MessageDescriptors) map[protoreflect.FullName]protoreflect.MessageDescriptor {
	out := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	for i := range ms.Len() {
		m := ms.Get(i)
		out[m.FullName()] = m
		for k, v := range allMessages(m.Messages()) {
			out[k] = v
		}
	}
	return out
}

// dmsg is a dynamic message of a spec schema, edited by field name.
type dmsg struct{ protoreflect.Message }

func (m dmsg) field(name string) protoreflect.FieldDescriptor {
	f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic(fmt.Sprintf("%s has no field %s", m.Descriptor().FullName(), name))
	}
	return f
}

func (m dmsg) set(name string, v any) dmsg {
	m.Set(m.field(name), protoreflect.ValueOf(v))
	return m
}

// add appends to a repeated scalar field.
func (m dmsg) add(name string, vs ...any) dmsg {
	l := m.Mutable(m.field(name)).List()
	for _, v := range vs {
		l.Append(protoreflect.ValueOf(v))
	}
	return m
}

// addMsg appends a new message to a repeated message field and returns it.
func (m dmsg) addMsg(name string) dmsg {
	l := m.Mutable(m.field(name)).List()
	v := l.NewElement()
	l.Append(v)
	return dmsg{v.Message()}
}

// msg returns a singular message field, created if unset.
func (m dmsg) msg(name string) dmsg { return dmsg{m.Mutable(m.field(name)).Message()} }

// param sets parameters[key] to an InferParameter with choice set to v.
func (m dmsg) param(key, choice string, v any) dmsg {
	mp := m.Mutable(m.field("parameters")).Map()
	p := mp.NewValue()
	dmsg{p.Message()}.set(choice, v)
	mp.Set(protoreflect.ValueOfString(key).MapKey(), p)
	return m
}

func (m dmsg) get(name string) protoreflect.Value { return m.Get(m.field(name)) }

// paramOf reads parameters[key] as "<choice>=<value>".
func (m dmsg) paramOf(key string) string {
	v := m.get("parameters").Map().Get(protoreflect.ValueOfString(key).MapKey())
	if !v.IsValid() {
		return "<missing>"
	}
	p := v.Message()
	f := p.WhichOneof(p.Descriptor().Oneofs().ByName("parameter_choice"))
	if f == nil {
		return "<unset>"
	}
	return fmt.Sprintf("%s=%v", f.Name(), p.Get(f).Interface())
}

func TestPublishedSchemaClient(t *testing.T) {
	for name, spec := range specDescriptors(t) {
		t.Run(name, func(t *testing.T) { testPublishedSchemaClient(t, spec) })
	}
}

func testPublishedSchemaClient(t *testing.T, spec protoreflect.FileDescriptor) {
	noLeaks(t)
	fb := &fakeBackend{}
	conn := startGRPC(t, fb)
	svc := spec.Services().ByName("GRPCInferenceService")
	ctx := context.Background()
	newReq := func(method string) dmsg {
		return dmsg{dynamicpb.NewMessage(svc.Methods().ByName(protoreflect.Name(method)).Input())}
	}
	call := func(method string, req dmsg) (dmsg, error) {
		resp := dynamicpb.NewMessage(svc.Methods().ByName(protoreflect.Name(method)).Output())
		err := conn.Invoke(ctx, fmt.Sprintf("/%s/%s", svc.FullName(), method), req.Interface(), resp)
		return dmsg{resp}, err
	}
	mustCall := func(method string, req dmsg) dmsg {
		t.Helper()
		resp, err := call(method, req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return resp
	}

	if r := mustCall("ServerLive", newReq("ServerLive")); !r.get("live").Bool() {
		t.Error("ServerLive: not live")
	}
	if r := mustCall("ServerReady", newReq("ServerReady")); !r.get("ready").Bool() {
		t.Error("ServerReady: not ready")
	}
	if r := mustCall("ModelReady", newReq("ModelReady").set("name", "resnet50").set("version", "1")); !r.get("ready").Bool() {
		t.Error("ModelReady: not ready")
	}
	sm := mustCall("ServerMetadata", newReq("ServerMetadata"))
	if sm.get("name").String() != "infaas" || sm.get("extensions").List().Len() == 0 {
		t.Errorf("ServerMetadata: %v", sm)
	}
	md := mustCall("ModelMetadata", newReq("ModelMetadata").set("name", "resnet50"))
	in0 := dmsg{md.get("inputs").List().Get(0).Message()}
	if md.get("platform").String() != "onnxruntime_onnx" || md.get("versions").List().Len() != 2 ||
		in0.get("name").String() != "x" || in0.get("datatype").String() != "FP32" || in0.get("shape").List().Get(3).Int() != 224 {
		t.Errorf("ModelMetadata: %v", md)
	}

	// Typed contents, parameters of every kind, requested outputs.
	req := newReq("ModelInfer").set("model_name", "resnet50").set("model_version", "2").set("id", "pub-1").
		param("latency_ms", "int64_param", int64(40)).
		param("min_accuracy", "double_param", 80.5).
		param("max_cost", "uint64_param", uint64(3)).
		param("strict", "bool_param", true).
		param("client", "string_param", "published")
	x := req.addMsg("inputs").set("name", "x").set("datatype", "FP32").add("shape", int64(2), int64(2)).
		param("note", "string_param", "per-input parameters are accepted")
	x.msg("contents").add("fp32_contents", float32(1), float32(2), float32(3), float32(4.5))
	s := req.addMsg("inputs").set("name", "s").set("datatype", "BYTES").add("shape", int64(1))
	s.msg("contents").add("bytes_contents", []byte("hé"))
	req.addMsg("outputs").set("name", "x_out").param("binary_data", "bool_param", false)
	req.addMsg("outputs").set("name", "sum")
	resp := mustCall("ModelInfer", req)

	got := fb.lastRequest()
	wantReq := Requirements{LatencyMs: 40, MinAccuracy: 80.5, MaxCost: 3, Strict: true}
	if got.Model != "resnet50" || got.Version != "2" || got.ID != "pub-1" || got.Requirements != wantReq ||
		!slices.Equal(got.Outputs, []string{"x_out", "sum"}) || len(got.Inputs) != 2 ||
		!bytes.Equal(got.Inputs[0].Data, rawFP32(1, 2, 3, 4.5)) || !slices.Equal(got.Inputs[0].Shape, []int64{2, 2}) ||
		!bytes.Equal(got.Inputs[1].Data, rawBYTES("hé")) {
		t.Errorf("backend got %+v", got)
	}
	if resp.get("model_name").String() != "resnet50" || resp.get("model_version").String() != "1" || resp.get("id").String() != "pub-1" {
		t.Errorf("response header: %v", resp)
	}
	for key, want := range map[string]string{
		"variant": "string_param=resnet50-onnx-b8", "queue_ms": "double_param=1.5", "met": "bool_param=true",
		"batch": "int64_param=8", "requests": "uint64_param=9223372036854775808",
	} {
		if got := resp.paramOf(key); got != want {
			t.Errorf("response parameter %s: %s, want %s", key, got, want)
		}
	}
	outs, raws := resp.get("outputs").List(), resp.get("raw_output_contents").List()
	wantOuts := []struct {
		name, datatype string
		shape          []int64
		raw            []byte
	}{
		{"x_out", "FP32", []int64{2, 2}, rawFP32(1, 2, 3, 4.5)},
		{"s_out", "BYTES", []int64{1}, rawBYTES("hé")},
		{"sum", "FP64", []int64{1}, rawFP64(10.5)},
	}
	if outs.Len() != len(wantOuts) || raws.Len() != len(wantOuts) {
		t.Fatalf("%d outputs, %d raw contents; want %d", outs.Len(), raws.Len(), len(wantOuts))
	}
	for i, w := range wantOuts {
		o := dmsg{outs.Get(i).Message()}
		var shape []int64
		for j := range o.get("shape").List().Len() {
			shape = append(shape, o.get("shape").List().Get(j).Int())
		}
		if o.get("name").String() != w.name || o.get("datatype").String() != w.datatype || !slices.Equal(shape, w.shape) ||
			!bytes.Equal(raws.Get(i).Bytes(), w.raw) {
			t.Errorf("output %d: %v raw %v, want %+v", i, o, raws.Get(i).Bytes(), w)
		}
	}

	// raw_input_contents.
	req = newReq("ModelInfer").set("model_name", "image_classification/imagenet")
	req.addMsg("inputs").set("name", "x").set("datatype", "FP32").add("shape", int64(1), int64(3))
	req.addMsg("inputs").set("name", "ids").set("datatype", "INT64").add("shape", int64(2))
	req.add("raw_input_contents", rawFP32(0.5, 0.25, 2), rawINT64(-1, 7))
	resp = mustCall("ModelInfer", req)
	got = fb.lastRequest()
	if !bytes.Equal(got.Inputs[0].Data, rawFP32(0.5, 0.25, 2)) || !bytes.Equal(got.Inputs[1].Data, rawINT64(-1, 7)) {
		t.Errorf("raw inputs reached the backend as %+v", got.Inputs)
	}
	if raws := resp.get("raw_output_contents").List(); raws.Len() != 3 || !bytes.Equal(raws.Get(2).Bytes(), rawFP64(2.75)) {
		t.Errorf("raw response: %v", resp)
	}

	// Errors come back as gRPC statuses.
	req = newReq("ModelInfer").set("model_name", "nope")
	req.addMsg("inputs").set("name", "x").set("datatype", "FP32").add("shape", int64(1)).msg("contents").add("fp32_contents", float32(1))
	if _, err := call("ModelInfer", req); status.Code(err) != codes.NotFound {
		t.Errorf("unknown model: %v, want NotFound", err)
	}
	req = newReq("ModelInfer").set("model_name", "resnet50")
	req.addMsg("inputs").set("name", "x").set("datatype", "FP32").add("shape", int64(2))
	req.add("raw_input_contents", rawFP32(1))
	if _, err := call("ModelInfer", req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("short raw input: %v, want InvalidArgument", err)
	}
}
