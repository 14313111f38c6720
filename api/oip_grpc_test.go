package api

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/controller"
)

func pbInt64(v int64) *pb.InferParameter {
	return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: v}}
}

func pbDouble(v float64) *pb.InferParameter {
	return &pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: v}}
}

func pbBool(v bool) *pb.InferParameter {
	return &pb.InferParameter{ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: v}}
}

func pbString(v string) *pb.InferParameter {
	return &pb.InferParameter{ParameterChoice: &pb.InferParameter_StringParam{StringParam: v}}
}

func pbUint64(v uint64) *pb.InferParameter {
	return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: v}}
}

type grpcInput = pb.ModelInferRequest_InferInputTensor

func TestGRPCInferRoundTrip(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{}
	client := pb.NewGRPCInferenceServiceClient(startGRPC(t, fb))
	tests := []struct {
		name    string
		input   *grpcInput
		raw     []byte // sent in raw_input_contents when set
		want    Tensor
		wantSum float64
	}{
		{"FP32 typed", &grpcInput{Name: "x", Datatype: "FP32", Shape: []int64{2, 2},
			Contents: &pb.InferTensorContents{Fp32Contents: []float32{1.5, 2, 3, -4}}}, nil,
			tensor("x", "FP32", []int64{2, 2}, rawFP32(1.5, 2, 3, -4)), 2.5},
		{"FP32 raw", &grpcInput{Name: "x", Datatype: "FP32", Shape: []int64{1, 3}}, rawFP32(1, 2, 3),
			tensor("x", "FP32", []int64{1, 3}, rawFP32(1, 2, 3)), 6},
		{"INT64 typed", &grpcInput{Name: "ids", Datatype: "INT64", Shape: []int64{2},
			Contents: &pb.InferTensorContents{Int64Contents: []int64{-7, 1 << 60}}}, nil,
			tensor("ids", "INT64", []int64{2}, rawINT64(-7, 1<<60)), 0},
		{"INT64 raw", &grpcInput{Name: "ids", Datatype: "INT64", Shape: []int64{1}}, rawINT64(42),
			tensor("ids", "INT64", []int64{1}, rawINT64(42)), 0},
		{"BOOL typed", &grpcInput{Name: "m", Datatype: "BOOL", Shape: []int64{3},
			Contents: &pb.InferTensorContents{BoolContents: []bool{true, false, true}}}, nil,
			tensor("m", "BOOL", []int64{3}, []byte{1, 0, 1}), 0},
		{"BOOL raw", &grpcInput{Name: "m", Datatype: "BOOL", Shape: []int64{2}}, []byte{0, 1},
			tensor("m", "BOOL", []int64{2}, []byte{0, 1}), 0},
		{"BYTES typed", &grpcInput{Name: "s", Datatype: "BYTES", Shape: []int64{2},
			Contents: &pb.InferTensorContents{BytesContents: [][]byte{[]byte("hi"), {0, 0xff}}}}, nil,
			tensor("s", "BYTES", []int64{2}, rawBYTES("hi", "\x00\xff")), 0},
		{"BYTES raw", &grpcInput{Name: "s", Datatype: "BYTES", Shape: []int64{2}}, rawBYTES("", "abc"),
			tensor("s", "BYTES", []int64{2}, rawBYTES("", "abc")), 0},
		{"INT8 typed", &grpcInput{Name: "q", Datatype: "INT8", Shape: []int64{2},
			Contents: &pb.InferTensorContents{IntContents: []int32{-128, 127}}}, nil,
			tensor("q", "INT8", []int64{2}, []byte{0x80, 0x7f}), 0},
		{"UINT16 typed", &grpcInput{Name: "u", Datatype: "UINT16", Shape: []int64{1},
			Contents: &pb.InferTensorContents{UintContents: []uint32{65535}}}, nil,
			tensor("u", "UINT16", []int64{1}, []byte{0xff, 0xff}), 0},
		{"FP64 typed", &grpcInput{Name: "d", Datatype: "FP64", Shape: []int64{1},
			Contents: &pb.InferTensorContents{Fp64Contents: []float64{0.1}}}, nil,
			tensor("d", "FP64", []int64{1}, rawFP64(0.1)), 0},
		{"FP16 raw", &grpcInput{Name: "h", Datatype: "FP16", Shape: []int64{1}}, []byte{0x00, 0x3c},
			tensor("h", "FP16", []int64{1}, []byte{0x00, 0x3c}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &pb.ModelInferRequest{
				ModelName: "image_classification/imagenet", ModelVersion: "1", Id: "g-" + tt.name,
				Parameters: map[string]*pb.InferParameter{
					"latency_ms": pbInt64(30), "min_accuracy": pbDouble(72.5), "max_cost": pbDouble(0.5),
					"strict": pbBool(true), "explain": pbBool(true), "note": pbString("ignored"),
				},
				Inputs:  []*grpcInput{tt.input},
				Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: tt.want.Name + "_out"}, {Name: "sum"}},
			}
			if tt.raw != nil {
				req.RawInputContents = [][]byte{tt.raw}
			}
			resp, err := client.ModelInfer(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got := fb.lastRequest()
			wantReq := Requirements{LatencyMs: 30, MinAccuracy: 72.5, MaxCost: 0.5, Strict: true, Explain: true}
			if got.Model != "image_classification/imagenet" || got.Version != "1" || got.ID != "g-"+tt.name ||
				got.Requirements != wantReq || !slices.Equal(got.Outputs, []string{tt.want.Name + "_out", "sum"}) {
				t.Errorf("backend got %+v", got)
			}
			in := got.Inputs[0]
			if in.Name != tt.want.Name || in.Datatype != tt.want.Datatype || !slices.Equal(in.Shape, tt.want.Shape) || !bytes.Equal(in.Data, tt.want.Data) {
				t.Errorf("backend got input %+v, want %+v", in, tt.want)
			}
			if resp.ModelName != "image_classification/imagenet" || resp.ModelVersion != "1" || resp.Id != "g-"+tt.name {
				t.Errorf("response header %v", resp)
			}
			if len(resp.Outputs) != 2 || len(resp.RawOutputContents) != 2 {
				t.Fatalf("got %d outputs, %d raw contents", len(resp.Outputs), len(resp.RawOutputContents))
			}
			echo := resp.Outputs[0]
			if echo.Name != tt.want.Name+"_out" || echo.Datatype != tt.want.Datatype || !slices.Equal(echo.Shape, tt.want.Shape) ||
				echo.Contents != nil || !bytes.Equal(resp.RawOutputContents[0], tt.want.Data) {
				t.Errorf("echo %v, raw %v", echo, resp.RawOutputContents[0])
			}
			if !bytes.Equal(resp.RawOutputContents[1], rawFP64(tt.wantSum)) {
				t.Errorf("sum raw %v, want %g", resp.RawOutputContents[1], tt.wantSum)
			}
		})
	}
}

func TestGRPCResponseParameters(t *testing.T) {
	noLeaks(t)
	client := pb.NewGRPCInferenceServiceClient(startGRPC(t, &fakeBackend{}))
	resp, err := client.ModelInfer(context.Background(), &pb.ModelInferRequest{
		ModelName: "resnet50",
		Inputs:    []*grpcInput{{Name: "x", Datatype: "FP32", Shape: []int64{1}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*pb.InferParameter{
		"variant":  pbString("resnet50-onnx-b8"),
		"queue_ms": pbDouble(1.5),
		"met":      pbBool(true),
		"batch":    pbInt64(8),
		"requests": pbUint64(1 << 63),
	}
	if len(resp.Parameters) != len(want) {
		t.Errorf("parameters %v", resp.Parameters)
	}
	for k, w := range want {
		if !proto.Equal(resp.Parameters[k], w) {
			t.Errorf("parameter %s = %v, want %v", k, resp.Parameters[k], w)
		}
	}
	if resp.Id != "" || resp.ModelName != "resnet50" {
		t.Errorf("id %q model %q", resp.Id, resp.ModelName)
	}
}

func TestParamToProto(t *testing.T) {
	tests := []struct {
		v    any
		want *pb.InferParameter
	}{
		{"s", pbString("s")}, {true, pbBool(true)}, {int(-3), pbInt64(-3)}, {int32(4), pbInt64(4)},
		{uint32(5), pbInt64(5)}, {uint(6), pbUint64(6)}, {float32(0.5), pbDouble(0.5)},
		{1500 * time.Microsecond, pbString("1.5ms")}, {[]string{"a", "b"}, pbString(`["a","b"]`)}, {map[string]int{"k": 1}, pbString(`{"k":1}`)},
	}
	for _, tt := range tests {
		if got := paramToProto(tt.v); !proto.Equal(got, tt.want) {
			t.Errorf("paramToProto(%#v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestGRPCInferErrors(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{}
	client := pb.NewGRPCInferenceServiceClient(startGRPC(t, fb))
	fp32 := func(vs ...float32) *grpcInput {
		return &grpcInput{Name: "x", Datatype: "FP32", Shape: []int64{int64(len(vs))}, Contents: &pb.InferTensorContents{Fp32Contents: vs}}
	}
	req := func(mod func(r *pb.ModelInferRequest)) *pb.ModelInferRequest {
		r := &pb.ModelInferRequest{ModelName: "resnet50", Inputs: []*grpcInput{fp32(1, 2)}}
		mod(r)
		return r
	}
	tests := []struct {
		name       string
		req        *pb.ModelInferRequest
		backendErr error
		wantCode   codes.Code
		wantMsg    string
	}{
		{"unknown model", req(func(r *pb.ModelInferRequest) { r.ModelName = "nope" }), nil, codes.NotFound, `model "nope": unknown model`},
		{"no model name", req(func(r *pb.ModelInferRequest) { r.ModelName = "" }), nil, codes.InvalidArgument, "model_name is empty"},
		{"no inputs", req(func(r *pb.ModelInferRequest) { r.Inputs = nil }), nil, codes.InvalidArgument, "no inputs"},
		{"raw wrong length", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "x", Datatype: "FP32", Shape: []int64{1, 3}}}
			r.RawInputContents = [][]byte{rawFP32(1, 2)}
		}), nil, codes.InvalidArgument, "8 bytes of raw data, but shape [1 3] of FP32 needs 12 (3 elements × 4 bytes)"},
		{"raw BYTES framing", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "s", Datatype: "BYTES", Shape: []int64{1}}}
			r.RawInputContents = [][]byte{{5, 0, 0, 0, 'a'}}
		}), nil, codes.InvalidArgument, "claims 5 bytes, but only 1 remain"},
		{"raw BYTES count", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "s", Datatype: "BYTES", Shape: []int64{2}}}
			r.RawInputContents = [][]byte{rawBYTES("a")}
		}), nil, codes.InvalidArgument, "holds 1 elements, but shape [2] needs 2"},
		{"mixing contents and raw", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{fp32(1), {Name: "y", Datatype: "FP32", Shape: []int64{1}}}
			r.RawInputContents = [][]byte{rawFP32(1), rawFP32(2)}
		}), nil, codes.InvalidArgument, `input "x" has fp32_contents while the request uses raw_input_contents`},
		{"raw count", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "x", Datatype: "FP32", Shape: []int64{1}}, {Name: "y", Datatype: "FP32", Shape: []int64{1}}}
			r.RawInputContents = [][]byte{rawFP32(1)}
		}), nil, codes.InvalidArgument, "raw_input_contents has 1 buffers for 2 inputs"},
		{"contents count vs shape", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{fp32(1, 2, 3)}
			r.Inputs[0].Shape = []int64{2, 2}
		}), nil, codes.InvalidArgument, "shape [2 2] holds 4 elements, but fp32_contents has 3"},
		{"datatype mismatch", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "x", Datatype: "FP32", Shape: []int64{1}, Contents: &pb.InferTensorContents{Int64Contents: []int64{1}}}}
		}), nil, codes.InvalidArgument, "FP32, so its data belongs in fp32_contents, not int64_contents"},
		{"INT8 out of range", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "q", Datatype: "INT8", Shape: []int64{2}, Contents: &pb.InferTensorContents{IntContents: []int32{1, 200}}}}
		}), nil, codes.InvalidArgument, "element 1: 200 does not fit INT8 (-128 to 127)"},
		{"UINT8 out of range", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "q", Datatype: "UINT8", Shape: []int64{1}, Contents: &pb.InferTensorContents{UintContents: []uint32{300}}}}
		}), nil, codes.InvalidArgument, "300 does not fit UINT8 (0 to 255)"},
		{"FP16 typed", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "h", Datatype: "FP16", Shape: []int64{1}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1}}}}
		}), nil, codes.InvalidArgument, "send it in raw_input_contents"},
		{"unknown datatype", req(func(r *pb.ModelInferRequest) { r.Inputs[0].Datatype = "FLOAT32" }), nil, codes.InvalidArgument, `datatype "FLOAT32" is unknown`},
		{"empty batch", req(func(r *pb.ModelInferRequest) {
			r.Inputs = []*grpcInput{{Name: "x", Datatype: "FP32", Shape: []int64{0, 4}}}
		}), nil, codes.InvalidArgument, "empty batch"},
		{"negative dimension", req(func(r *pb.ModelInferRequest) { r.Inputs[0].Shape = []int64{-1, 2} }), nil, codes.InvalidArgument, "negative dimension"},
		{"input without name", req(func(r *pb.ModelInferRequest) { r.Inputs[0].Name = "" }), nil, codes.InvalidArgument, "an input has no name"},
		{"output without name", req(func(r *pb.ModelInferRequest) {
			r.Outputs = []*pb.ModelInferRequest_InferRequestedOutputTensor{{}}
		}), nil, codes.InvalidArgument, "requested output has no name"},
		{"negative latency", req(func(r *pb.ModelInferRequest) {
			r.Parameters = map[string]*pb.InferParameter{"latency_ms": pbInt64(-5)}
		}), nil, codes.InvalidArgument, "latency_ms must be a positive number of milliseconds, got -5"},
		{"accuracy 101", req(func(r *pb.ModelInferRequest) {
			r.Parameters = map[string]*pb.InferParameter{"min_accuracy": pbDouble(101)}
		}), nil, codes.InvalidArgument, "min_accuracy must be a percentage between 0 and 100, got 101"},
		{"latency as string", req(func(r *pb.ModelInferRequest) {
			r.Parameters = map[string]*pb.InferParameter{"latency_ms": pbString("50")}
		}), nil, codes.InvalidArgument, `got the string "50"`},
		{"strict as int", req(func(r *pb.ModelInferRequest) {
			r.Parameters = map[string]*pb.InferParameter{"strict": pbInt64(1)}
		}), nil, codes.InvalidArgument, "strict must be true or false, got 1"},
		{"overloaded", req(func(*pb.ModelInferRequest) {}), controller.ErrOverloaded, codes.Unavailable, "overloaded"},
		{"unsatisfiable", req(func(*pb.ModelInferRequest) {}), controller.ErrUnsatisfiable, codes.FailedPrecondition, "cannot be met"},
		{"deadline", req(func(*pb.ModelInferRequest) {}), context.DeadlineExceeded, codes.DeadlineExceeded, "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb.mu.Lock()
			fb.err = tt.backendErr
			fb.mu.Unlock()
			_, err := client.ModelInfer(context.Background(), tt.req)
			st := status.Convert(err)
			if st.Code() != tt.wantCode || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Errorf("got %v %q, want %v saying %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func TestGRPCInconsistentBackendOutput(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{respond: func(*InferRequest) *InferResponse {
		return &InferResponse{Outputs: []Tensor{tensor("y", "INT64", []int64{2}, rawINT64(1))}}
	}}
	client := pb.NewGRPCInferenceServiceClient(startGRPC(t, fb))
	_, err := client.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "resnet50",
		Inputs: []*grpcInput{{Name: "x", Datatype: "BOOL", Shape: []int64{1}, Contents: &pb.InferTensorContents{BoolContents: []bool{true}}}}})
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "inconsistent output") {
		t.Errorf("got %v", err)
	}
}

func TestGRPCHealthAndMetadata(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{}
	client := pb.NewGRPCInferenceServiceClient(startGRPC(t, fb))
	ctx := context.Background()

	if r, err := client.ServerLive(ctx, &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive: %v, %v", r, err)
	}
	if r, err := client.ServerReady(ctx, &pb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("ServerReady: %v, %v", r, err)
	}
	fb.mu.Lock()
	fb.notReady = true
	fb.mu.Unlock()
	if r, err := client.ServerReady(ctx, &pb.ServerReadyRequest{}); err != nil || r.Ready {
		t.Errorf("ServerReady when not ready: %v, %v", r, err)
	}
	sm, err := client.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
	if err != nil || sm.Name != "infaas" || sm.Version == "" || !slices.Contains(sm.Extensions, "model_less") {
		t.Errorf("ServerMetadata: %v, %v", sm, err)
	}

	readiness := []struct {
		name      string
		wantReady bool
		wantCode  codes.Code
	}{
		{"resnet50", true, codes.OK}, {"warming", false, codes.OK}, {"nope", false, codes.NotFound}, {"", false, codes.InvalidArgument},
	}
	for _, tt := range readiness {
		r, err := client.ModelReady(ctx, &pb.ModelReadyRequest{Name: tt.name})
		if status.Code(err) != tt.wantCode || r.GetReady() != tt.wantReady {
			t.Errorf("ModelReady(%q) = %v, %v", tt.name, r, err)
		}
	}

	md, err := client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "resnet50", Version: "2"})
	want := &pb.ModelMetadataResponse{
		Name: "resnet50", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs:  []*pb.ModelMetadataResponse_TensorMetadata{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 3, 224, 224}}},
		Outputs: []*pb.ModelMetadataResponse_TensorMetadata{{Name: "probs", Datatype: "FP32", Shape: []int64{-1, 1000}}},
	}
	if err != nil || !proto.Equal(md, want) {
		t.Errorf("ModelMetadata = %v, %v; want %v", md, err, want)
	}
	for _, r := range []*pb.ModelMetadataRequest{{Name: "nope"}, {Name: "resnet50", Version: "9"}} {
		if _, err := client.ModelMetadata(ctx, r); status.Code(err) != codes.NotFound {
			t.Errorf("ModelMetadata(%v): %v, want NotFound", r, err)
		}
	}
}
