package api

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/infaas/infaas/api/inferencepb"
)

// consistent checks what a decoder accepted: every input has a name, a
// known datatype and exactly the raw bytes its shape needs.
func consistent(t *testing.T, req *InferRequest) {
	t.Helper()
	for _, in := range req.Inputs {
		count, size, err := tensorHeader("input", in.Name, in.Datatype, in.Shape)
		if err != nil {
			t.Fatalf("accepted input %q %s %v: %v", in.Name, in.Datatype, in.Shape, err)
		}
		if err := checkRaw("input", in.Datatype, in.Shape, count, size, in.Data); err != nil {
			t.Fatalf("accepted input whose data does not fit its shape: %v", err)
		}
	}
}

// FuzzDecodeBinaryRequest fuzzes the binary tensor data extension: a JSON
// header of headerLen bytes (Inference-Header-Content-Length) followed by
// raw tensor bytes. Whatever it accepts is consistent; nothing panics.
func FuzzDecodeBinaryRequest(f *testing.F) {
	for _, c := range []struct{ header, tail string }{
		{`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`, "\x00\x00\x80\x3f\x00\x00\x00\x40"},
		{`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}`, "\x01\x00\x00\x00a\x00\x00\x00\x00"},
		{`{"inputs":[{"name":"a","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":8}},{"name":"b","shape":[1],"datatype":"BOOL","data":[true]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`, "\x07\x00\x00\x00\x00\x00\x00\x00"},
	} {
		f.Add([]byte(c.header), []byte(c.tail))
	}
	f.Fuzz(func(t *testing.T, header, tail []byte) {
		body := append(append([]byte{}, header...), tail...)
		jr, err := decodeJSONRequest(body, len(header))
		if err != nil {
			return
		}
		consistent(t, &InferRequest{Inputs: jr.inputs})
	})
}

// FuzzDecodeGRPCRequest fuzzes the conversion of a ModelInferRequest (as
// the gRPC server receives it, any bytes that parse as one).
func FuzzDecodeGRPCRequest(f *testing.F) {
	seeds := []*pb.ModelInferRequest{
		{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2},
			Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}}}},
		{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "INT64", Shape: []int64{1}}},
			RawInputContents: [][]byte{{1, 0, 0, 0, 0, 0, 0, 0}},
			Parameters:       map[string]*pb.InferParameter{"latency_ms": {ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: 5}}}},
		{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "s", Datatype: "BYTES", Shape: []int64{1},
			Contents: &pb.InferTensorContents{BytesContents: [][]byte{[]byte("hi")}}}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req pb.ModelInferRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		in, err := decodeGRPCRequest(&req)
		if err != nil {
			return
		}
		if in.Model == "" || len(in.Inputs) == 0 {
			t.Fatalf("accepted a request without a model or inputs: %+v", in)
		}
		consistent(t, in)
	})
}
