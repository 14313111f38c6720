// Package workerrpc is the dispatcher-to-worker boundary as a gRPC service
// (infaas.worker.v1.Worker, defined in worker.proto). Server exposes a
// *worker.Worker; Client talks to one over a connection and has the same
// Load/Unload/Infer/State methods, plus ID, so the controller can hold
// either a Client or a Local (the in-process worker) behind one interface.
//
// It owns the mapping between the worker's sentinel errors and gRPC
// status codes: each sentinel travels as a code plus a
// google.rpc.ErrorInfo reason, and the Client turns it back into an error
// that satisfies errors.Is with the same sentinel and reads as the
// worker's own message.
//
// The generated code in workerpb is committed; after editing worker.proto
// run `go generate ./workerrpc` (needs protoc, protoc-gen-go and
// protoc-gen-go-grpc on PATH).
package workerrpc

//go:generate protoc -I.. --go_out=.. --go_opt=module=github.com/infaas/infaas --go-grpc_out=.. --go-grpc_opt=module=github.com/infaas/infaas ../workerrpc/worker.proto
