package api

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"

	pb "github.com/infaas/infaas/api/inferencepb"
)

// InferenceServer serves the Open Inference Protocol's gRPC service,
// inference.GRPCInferenceService, over a Backend. Errors are gRPC statuses
// with the codes of Code. Register it with
// inferencepb.RegisterGRPCInferenceServiceServer.
type InferenceServer struct {
	pb.UnimplementedGRPCInferenceServiceServer
	backend Backend
	bodies  *BodyBudget
}

var _ pb.GRPCInferenceServiceServer = (*InferenceServer)(nil)

// NewInferenceServer returns a server over b.
func NewInferenceServer(b Backend) *InferenceServer {
	return &InferenceServer{backend: b}
}

// WithBodyBudget charges each ModelInfer request's size to b — the budget
// the HTTP request bodies share (--max-body-memory) — from when it is
// decoded until it is answered, and refuses one that does not fit with
// Unavailable and a RetryInfo, as HTTP answers 503 with Retry-After. gRPC
// has read the message by then (each bounded by the server's
// MaxRecvMsgSize); what the budget bounds is what requests hold while they
// queue and run, which is most of their life, so that many clients sending
// large tensors over gRPC cannot together take the server's memory any
// more than over HTTP. It returns s.
func (s *InferenceServer) WithBodyBudget(b *BodyBudget) *InferenceServer {
	s.bodies = b
	return s
}

// ServerLive reports true: a server that answers is live.
func (s *InferenceServer) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: true}, nil
}

// ServerReady reports Backend.Ready.
func (s *InferenceServer) ServerReady(ctx context.Context, _ *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	return &pb.ServerReadyResponse{Ready: s.backend.Ready(ctx)}, nil
}

// ModelReady reports Backend.ModelReady; an unknown model is NotFound. The
// version is not consulted: readiness is per model.
func (s *InferenceServer) ModelReady(ctx context.Context, req *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	if req.GetName() == "" {
		return nil, GRPCError(fmt.Errorf("%w: name is empty; name a model, an architecture or a use case", ErrBadRequest))
	}
	ready, err := s.backend.ModelReady(ctx, req.GetName())
	if err != nil {
		return nil, GRPCError(err)
	}
	return &pb.ModelReadyResponse{Ready: ready}, nil
}

// ServerMetadata reports infaas's name, version and extensions.
func (s *InferenceServer) ServerMetadata(context.Context, *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	return &pb.ServerMetadataResponse{Name: serverName, Version: serverVersion, Extensions: serverExtensions}, nil
}

// ModelMetadata reports Backend.ModelMetadata.
func (s *InferenceServer) ModelMetadata(ctx context.Context, req *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	if req.GetName() == "" {
		return nil, GRPCError(fmt.Errorf("%w: name is empty; name a model, an architecture or a use case", ErrBadRequest))
	}
	md, err := modelMetadata(ctx, s.backend, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, GRPCError(err)
	}
	tensors := func(ts []TensorMetadata) []*pb.ModelMetadataResponse_TensorMetadata {
		out := make([]*pb.ModelMetadataResponse_TensorMetadata, len(ts))
		for i, t := range ts {
			out[i] = &pb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		}
		return out
	}
	return &pb.ModelMetadataResponse{
		Name:     md.Name,
		Versions: md.Versions,
		Platform: md.Platform,
		Inputs:   tensors(md.Inputs),
		Outputs:  tensors(md.Outputs),
	}, nil
}

// ModelInfer decodes the request, runs it on the backend and answers with
// the outputs in raw_output_contents, as Triton does; the Triton and KServe
// clients read them from there.
func (s *InferenceServer) ModelInfer(ctx context.Context, req *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	h := hold{b: s.bodies}
	defer h.release()
	if s.bodies != nil {
		if err := h.take(int64(proto.Size(req))); err != nil {
			return nil, GRPCError(err)
		}
	}
	in, err := decodeGRPCRequest(req)
	if err != nil {
		return nil, GRPCError(err)
	}
	resp, err := infer(ctx, s.backend, in)
	if err != nil {
		return nil, GRPCError(err)
	}
	out, err := encodeGRPCResponse(resp)
	if err != nil {
		return nil, GRPCError(err)
	}
	return out, nil
}

// decodeGRPCRequest converts a ModelInferRequest. Each input's data comes
// from its typed contents or, for all inputs at once, from
// raw_input_contents; never from both.
func decodeGRPCRequest(req *pb.ModelInferRequest) (*InferRequest, error) {
	if req.GetModelName() == "" {
		return nil, fmt.Errorf("%w: model_name is empty; name a model, an architecture or a use case", ErrBadRequest)
	}
	if len(req.GetInputs()) == 0 {
		return nil, fmt.Errorf("%w: the request has no inputs; send at least one", ErrBadRequest)
	}
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return nil, fmt.Errorf("%w: raw_input_contents has %d buffers for %d inputs; send one per input, in order",
			ErrBadRequest, len(raw), len(req.GetInputs()))
	}
	reqs, err := requirementsFrom(paramsFromProto(req.GetParameters()))
	if err != nil {
		return nil, err
	}
	out := &InferRequest{
		Model:        req.GetModelName(),
		Version:      req.GetModelVersion(),
		ID:           req.GetId(),
		Requirements: reqs,
		Inputs:       make([]Tensor, len(req.GetInputs())),
	}
	for i, in := range req.GetInputs() {
		count, size, err := tensorHeader("input", in.GetName(), in.GetDatatype(), in.GetShape())
		if err != nil {
			return nil, err
		}
		label := "input " + strconv.Quote(in.GetName())
		t := Tensor{Name: in.GetName(), Datatype: in.GetDatatype(), Shape: in.GetShape()}
		if len(raw) > 0 {
			if f := contentsFields(in.GetContents()); len(f) > 0 {
				return nil, fmt.Errorf("%w: %s has %s while the request uses raw_input_contents; "+
					"send every input's data one way", ErrBadRequest, label, f[0].name)
			}
			if err := checkRaw(label, t.Datatype, t.Shape, count, size, raw[i]); err != nil {
				return nil, err
			}
			t.Data = raw[i]
		} else if t.Data, err = contentsToRaw(label, t, count, in.GetContents()); err != nil {
			return nil, err
		}
		out.Inputs[i] = t
	}
	for _, o := range req.GetOutputs() {
		if o.GetName() == "" {
			return nil, fmt.Errorf("%w: a requested output has no name", ErrBadRequest)
		}
		out.Outputs = append(out.Outputs, o.GetName())
		if p, ok := o.GetParameters()[paramClassification]; ok {
			n, err := classificationCount(p.GetInt64Param())
			if err != nil {
				return nil, err
			}
			if out.Classification == nil {
				out.Classification = map[string]int{}
			}
			out.Classification[o.GetName()] = n
		}
	}
	return out, nil
}

// contentsField is one populated field of InferTensorContents.
type contentsField struct {
	name string
	n    int
}

// contentsFields lists the populated fields of c.
func contentsFields(c *pb.InferTensorContents) []contentsField {
	var out []contentsField
	for _, f := range [...]contentsField{
		{"bool_contents", len(c.GetBoolContents())},
		{"int_contents", len(c.GetIntContents())},
		{"int64_contents", len(c.GetInt64Contents())},
		{"uint_contents", len(c.GetUintContents())},
		{"uint64_contents", len(c.GetUint64Contents())},
		{"fp32_contents", len(c.GetFp32Contents())},
		{"fp64_contents", len(c.GetFp64Contents())},
		{"bytes_contents", len(c.GetBytesContents())},
	} {
		if f.n > 0 {
			out = append(out, f)
		}
	}
	return out
}

// contentsFieldOf is the InferTensorContents field that holds a datatype.
var contentsFieldOf = map[string]string{
	"BOOL": "bool_contents",
	"INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
	"INT64": "int64_contents",
	"UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
	"UINT64": "uint64_contents",
	"FP32":   "fp32_contents",
	"FP64":   "fp64_contents",
	"BYTES":  "bytes_contents",
}

// contentsToRaw converts typed contents into the raw layout, checking that
// they sit in the field of the datatype, number count and fit it.
func contentsToRaw(label string, t Tensor, count int, c *pb.InferTensorContents) ([]byte, error) {
	want, ok := contentsFieldOf[t.Datatype]
	if !ok { // FP16, BF16
		return nil, fmt.Errorf("%w: %s is %s, which has no typed contents; send it in raw_input_contents",
			ErrBadRequest, label, t.Datatype)
	}
	n := 0
	for _, f := range contentsFields(c) {
		if f.name != want {
			return nil, fmt.Errorf("%w: %s is %s, so its data belongs in %s, not %s",
				ErrBadRequest, label, t.Datatype, want, f.name)
		}
		n = f.n
	}
	if n != count {
		return nil, fmt.Errorf("%w: %s: shape %v holds %d elements, but %s has %d",
			ErrBadRequest, label, t.Shape, count, want, n)
	}
	size, _ := elementSize(t.Datatype)
	out := make([]byte, 0, count*size)
	le := binary.LittleEndian
	switch t.Datatype {
	case "BOOL":
		for _, v := range c.GetBoolContents() {
			out = append(out, b2u8(v))
		}
	case "INT8", "INT16", "INT32":
		lo, hi := int64(-1)<<(size*8-1), int64(1)<<(size*8-1)-1
		for i, v := range c.GetIntContents() {
			if int64(v) < lo || int64(v) > hi {
				return nil, fmt.Errorf("%w: %s: element %d: %d does not fit %s (%d to %d)",
					ErrBadRequest, label, i, v, t.Datatype, lo, hi)
			}
			out = appendUint(out, uint64(v), size)
		}
	case "INT64":
		for _, v := range c.GetInt64Contents() {
			out = le.AppendUint64(out, uint64(v))
		}
	case "UINT8", "UINT16", "UINT32":
		hi := uint64(1)<<(size*8) - 1
		for i, v := range c.GetUintContents() {
			if uint64(v) > hi {
				return nil, fmt.Errorf("%w: %s: element %d: %d does not fit %s (0 to %d)",
					ErrBadRequest, label, i, v, t.Datatype, hi)
			}
			out = appendUint(out, uint64(v), size)
		}
	case "UINT64":
		for _, v := range c.GetUint64Contents() {
			out = le.AppendUint64(out, v)
		}
	case "FP32":
		for _, v := range c.GetFp32Contents() {
			out = le.AppendUint32(out, math.Float32bits(v))
		}
	case "FP64":
		for _, v := range c.GetFp64Contents() {
			out = le.AppendUint64(out, math.Float64bits(v))
		}
	case datatypeBytes:
		for _, v := range c.GetBytesContents() {
			out = appendBytesElement(out, v)
		}
	}
	return out, nil
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// encodeGRPCResponse converts a response, its outputs' data in
// raw_output_contents.
func encodeGRPCResponse(resp *InferResponse) (*pb.ModelInferResponse, error) {
	out := &pb.ModelInferResponse{
		ModelName:         resp.Model,
		ModelVersion:      resp.Version,
		Id:                resp.ID,
		Parameters:        paramsToProto(resp.Parameters),
		Outputs:           make([]*pb.ModelInferResponse_InferOutputTensor, len(resp.Outputs)),
		RawOutputContents: make([][]byte, len(resp.Outputs)),
	}
	for i, t := range resp.Outputs {
		if err := checkOutput(t); err != nil {
			return nil, err
		}
		out.Outputs[i] = &pb.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		out.RawOutputContents[i] = t.Data
	}
	return out, nil
}

// paramsFromProto converts parameters to the Go values requirementsFrom
// reads: bool, int64, string, float64 or uint64.
func paramsFromProto(params map[string]*pb.InferParameter) map[string]any {
	out := make(map[string]any, len(params))
	for k, p := range params {
		switch c := p.GetParameterChoice().(type) {
		case *pb.InferParameter_BoolParam:
			out[k] = c.BoolParam
		case *pb.InferParameter_Int64Param:
			out[k] = c.Int64Param
		case *pb.InferParameter_StringParam:
			out[k] = c.StringParam
		case *pb.InferParameter_DoubleParam:
			out[k] = c.DoubleParam
		case *pb.InferParameter_Uint64Param:
			out[k] = c.Uint64Param
		default:
			out[k] = nil
		}
	}
	return out
}

// paramsToProto converts response parameters: strings to string_param,
// booleans to bool_param, integers to int64_param (unsigned ones that may
// not fit to uint64_param), floats to double_param; anything else to a
// string_param holding its JSON.
func paramsToProto(params map[string]any) map[string]*pb.InferParameter {
	if len(params) == 0 {
		return nil
	}
	out := make(map[string]*pb.InferParameter, len(params))
	for k, v := range params {
		out[k] = paramToProto(v)
	}
	return out
}

func paramToProto(v any) *pb.InferParameter {
	i64 := func(n int64) *pb.InferParameter {
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: n}}
	}
	f64 := func(f float64) *pb.InferParameter {
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: f}}
	}
	str := func(s string) *pb.InferParameter {
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_StringParam{StringParam: s}}
	}
	switch x := v.(type) {
	case string:
		return str(x)
	case bool:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: x}}
	case int:
		return i64(int64(x))
	case int8:
		return i64(int64(x))
	case int16:
		return i64(int64(x))
	case int32:
		return i64(int64(x))
	case int64:
		return i64(x)
	case uint8:
		return i64(int64(x))
	case uint16:
		return i64(int64(x))
	case uint32:
		return i64(int64(x))
	case uint:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: uint64(x)}}
	case uint64:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: x}}
	case float32:
		return f64(float64(x))
	case float64:
		return f64(x)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return i64(n)
		}
		if f, err := x.Float64(); err == nil {
			return f64(f)
		}
		return str(string(x))
	case fmt.Stringer:
		return str(x.String())
	}
	if b, err := json.Marshal(v); err == nil {
		return str(string(b))
	}
	return str(fmt.Sprint(v))
}
