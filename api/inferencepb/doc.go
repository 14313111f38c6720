// Package inferencepb holds the Go types and gRPC stubs generated from
// inference.proto, infaas's copy of the Open Inference Protocol (KServe v2)
// gRPC service, wire-compatible with clients generated from the published
// specification. The protocol logic lives in package api; this package is
// generated code only.
//
// The generated files are committed, so building infaas needs no protoc;
// after editing inference.proto run `go generate ./api/inferencepb` (needs
// protoc, protoc-gen-go and protoc-gen-go-grpc on PATH).
package inferencepb

//go:generate protoc -I.. --go_out=.. --go_opt=paths=source_relative --go-grpc_out=.. --go-grpc_opt=paths=source_relative ../inferencepb/inference.proto
