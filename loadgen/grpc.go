package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/client"
)

// GRPCSender sends requests over the Open Inference Protocol's gRPC
// service, inference.GRPCInferenceService/ModelInfer, on one connection
// (HTTP/2 multiplexes the concurrent requests).
type GRPCSender struct {
	conn *grpc.ClientConn
	rpc  pb.GRPCInferenceServiceClient
	seed uint64
}

var _ Sender = (*GRPCSender)(nil)

// NewGRPCSender returns a sender to addr (host:port, plaintext). It
// connects lazily: an unreachable server shows in Prepare. Inputs are made
// up from seed.
func NewGRPCSender(addr string, seed uint64) (*GRPCSender, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("gRPC server %s: %w", addr, err)
	}
	return &GRPCSender{conn: conn, rpc: pb.NewGRPCInferenceServiceClient(conn), seed: seed}, nil
}

// Close closes the connection.
func (s *GRPCSender) Close() error { return s.conn.Close() }

// Prepare implements Sender: it reads the model's inputs from
// ModelMetadata and builds one request of synthetic tensors in
// raw_input_contents.
func (s *GRPCSender) Prepare(ctx context.Context, set RequirementSet) (*Prepared, error) {
	md, err := s.rpc.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: set.Model})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", set.Model, err)
	}
	meta := func(ts []*pb.ModelMetadataResponse_TensorMetadata) []client.TensorMetadata {
		out := make([]client.TensorMetadata, len(ts))
		for i, t := range ts {
			out[i] = client.TensorMetadata{Name: t.GetName(), Datatype: t.GetDatatype(), Shape: t.GetShape()}
		}
		return out
	}
	syn, err := makeInputs(set.Model, meta(md.GetInputs()), meta(md.GetOutputs()), set, rand.New(rand.NewPCG(s.seed, 0)))
	if err != nil {
		return nil, err
	}
	req := &pb.ModelInferRequest{ModelName: set.Model, Parameters: protoParams(params(set))}
	for _, x := range syn {
		req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{
			Name: x.spec.Name, Datatype: x.spec.Datatype, Shape: x.shape,
		})
		req.RawInputContents = append(req.RawInputContents, x.raw())
	}
	return &Prepared{Set: set, Body: req}, nil
}

// Send implements Sender.
func (s *GRPCSender) Send(ctx context.Context, p *Prepared) Outcome {
	req, ok := p.Body.(*pb.ModelInferRequest)
	if !ok {
		return Outcome{Result: Failed, Status: "error", Err: errors.New("the request was not prepared by this gRPC sender")}
	}
	resp, err := s.rpc.ModelInfer(ctx, req)
	if err != nil {
		return grpcFailure(ctx, err)
	}
	o := Outcome{Result: Answered, Status: codes.OK.String()}
	ps := resp.GetParameters()
	if q, c := ps["queue_ms"], ps["compute_ms"]; q != nil && c != nil {
		o.Served = Timing{Known: true, QueueMs: q.GetDoubleParam(), ComputeMs: c.GetDoubleParam(),
			BatchSize: int(ps["batch_size"].GetInt64Param()), Replica: ps["replica"].GetStringParam(), Worker: ps["worker"].GetStringParam()}
	}
	if v := ps["variant"].GetStringParam(); v != "" {
		o.Variant = v
	} else if n := resp.GetModelName(); n != req.GetModelName() {
		o.Variant = n
	}
	return o
}

// grpcFailure classifies an error status: the server's refusals are
// ResourceExhausted, Unavailable and FailedPrecondition (requirements that
// strict requests cannot have met); a deadline is a timeout.
func grpcFailure(ctx context.Context, err error) Outcome {
	if ctx.Err() != nil {
		return transportFailure(ctx, err)
	}
	code := status.Code(err)
	o := Outcome{Result: Failed, Status: code.String(), Err: err}
	switch code {
	case codes.ResourceExhausted, codes.Unavailable, codes.FailedPrecondition:
		o.Result = Refused
	case codes.DeadlineExceeded:
		o.Status = "timeout"
	}
	return o
}

// protoParams converts request parameters as Requirements.Params writes
// them: numbers and booleans.
func protoParams(params map[string]any) map[string]*pb.InferParameter {
	out := make(map[string]*pb.InferParameter, len(params))
	for k, v := range params {
		switch x := v.(type) {
		case bool:
			out[k] = &pb.InferParameter{ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: x}}
		case float64:
			out[k] = &pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: x}}
		case string:
			out[k] = &pb.InferParameter{ParameterChoice: &pb.InferParameter_StringParam{StringParam: x}}
		}
	}
	return out
}
