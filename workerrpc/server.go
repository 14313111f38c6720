package workerrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// MaxMessageBytes bounds one message either way (a batch of inputs or
// outputs); gRPC's default of 4 MiB is too small for large batches.
const MaxMessageBytes = 64 << 20

// ServerOptions are the grpc.Server options a worker server needs (message
// size limits matching the Client's).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes)}
}

// Server serves one worker over gRPC. It holds no state of its own; the
// worker's lifecycle (Run) stays with its owner.
type Server struct {
	workerpb.UnimplementedWorkerServer
	w *worker.Worker
	// Profiler, when set, answers Profile: it measures a variant on this
	// worker's hardware. Without it Profile is Unimplemented.
	Profiler func(ctx context.Context, v catalog.Variant, a catalog.Architecture) (catalog.Profile, error)
}

var _ workerpb.WorkerServer = (*Server)(nil)

// NewServer returns a Server for w; register it with
// workerpb.RegisterWorkerServer on a grpc.Server built with ServerOptions.
func NewServer(w *worker.Worker) *Server { return &Server{w: w} }

// Load decodes the variant and architecture and loads a replica.
func (s *Server) Load(ctx context.Context, req *workerpb.LoadRequest) (*workerpb.LoadResponse, error) {
	var (
		v catalog.Variant
		a catalog.Architecture
	)
	if err := json.Unmarshal(req.GetVariantJson(), &v); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "load: decode variant_json: %v", err)
	}
	if err := json.Unmarshal(req.GetArchitectureJson(), &a); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "load %s: decode architecture_json: %v", v.Name, err)
	}
	id, err := s.w.Load(ctx, v, a)
	if err != nil {
		return nil, toStatus(err)
	}
	return &workerpb.LoadResponse{ReplicaId: id}, nil
}

// Unload drains a replica.
func (s *Server) Unload(_ context.Context, req *workerpb.UnloadRequest) (*workerpb.UnloadResponse, error) {
	if err := s.w.Unload(req.GetReplicaId()); err != nil {
		return nil, toStatus(err)
	}
	return &workerpb.UnloadResponse{}, nil
}

// Infer runs one request. The input and output bytes are handed through
// without copying.
func (s *Server) Infer(ctx context.Context, req *workerpb.InferRequest) (*workerpb.InferResponse, error) {
	wr := worker.Request{Inputs: fromWire(req.GetInputs()), Batch: int(req.GetBatch())}
	if b := req.GetBudgetNs(); b > 0 {
		wr.Deadline = time.Now().Add(time.Duration(b))
	}
	if a := req.GetAsked(); a != nil {
		wr.Asked = health.Asked{LatencyMs: a.GetLatencyMs(), MinAccuracy: a.GetMinAccuracy(), Pinned: a.GetPinned()}
	}
	resp, err := s.w.Infer(ctx, req.GetReplicaId(), wr)
	if err != nil {
		return nil, toStatus(err)
	}
	return &workerpb.InferResponse{
		Outputs:   toWire(resp.Outputs),
		QueueNs:   int64(resp.QueueTime),
		ComputeNs: int64(resp.ComputeTime),
		BatchSize: int32(resp.BatchSize),
		Replica:   resp.Replica,
		Variant:   resp.Variant,
	}, nil
}

// State snapshots the worker.
func (s *Server) State(context.Context, *workerpb.StateRequest) (*workerpb.StateResponse, error) {
	b, err := json.Marshal(s.w.State())
	if err != nil {
		return nil, status.Error(codes.Internal, fmt.Sprintf("state: encode status: %v", err))
	}
	return &workerpb.StateResponse{StatusJson: b}, nil
}

// Profile measures a variant with the server's Profiler.
func (s *Server) Profile(ctx context.Context, req *workerpb.ProfileRequest) (*workerpb.ProfileResponse, error) {
	if s.Profiler == nil {
		return nil, status.Error(codes.Unimplemented, "this worker does not profile")
	}
	var (
		v catalog.Variant
		a catalog.Architecture
	)
	if err := json.Unmarshal(req.GetVariantJson(), &v); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "profile: decode variant_json: %v", err)
	}
	if err := json.Unmarshal(req.GetArchitectureJson(), &a); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "profile %s: decode architecture_json: %v", v.Name, err)
	}
	p, err := s.Profiler(ctx, v, a)
	if err != nil {
		return nil, toStatus(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "profile %s: encode: %v", v.Name, err)
	}
	return &workerpb.ProfileResponse{ProfileJson: b}, nil
}
