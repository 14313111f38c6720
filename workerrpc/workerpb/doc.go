// Package workerpb holds the Go types and gRPC stubs generated from
// workerrpc/worker.proto, the infaas.worker.v1.Worker service. The client,
// the server and the error mapping live in package workerrpc; this package
// is generated code only (regenerate with `go generate ./workerrpc`).
package workerpb
