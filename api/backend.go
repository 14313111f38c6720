package api

import (
	"context"

	"github.com/infaas/infaas/inference"
)

// The protocol-independent request and answer types live in package
// inference so the controller need not import the front end.
type (
	Tensor         = inference.Tensor
	Requirements   = inference.Requirements
	InferRequest   = inference.InferRequest
	InferResponse  = inference.InferResponse
	ModelMetadata  = inference.ModelMetadata
	ModelStats     = inference.ModelStats
	TensorMetadata = inference.TensorMetadata
)

// Backend is what the Open Inference Protocol front ends (HTTP and gRPC)
// need from the controller.
type Backend interface {
	Infer(ctx context.Context, req *InferRequest) (*InferResponse, error)
	ModelMetadata(ctx context.Context, name string) (ModelMetadata, error)
	ModelReady(ctx context.Context, name string) (bool, error)
	Ready(ctx context.Context) bool
}

// StatsBackend is a Backend that also keeps per-model statistics
// (GET /v2/models/{name}/stats, Triton's statistics extension).
type StatsBackend interface {
	ModelStatistics(ctx context.Context, name string) (ModelStats, error)
}
