// Package onnx owns infaas's view of the ONNX model format: the protobuf types
// generated from onnx.proto (a subset of the official schema with the official
// field numbers, so models round-trip without loss), and small helpers to parse
// and validate a model, read and build tensors, and inspect a graph's inputs,
// outputs and value types.
//
// It does no inference; running a model is the job of the runtime package.
// The generated onnx.pb.go is committed, so building infaas needs no protoc;
// regenerate it after editing onnx.proto with `go generate ./onnx` (needs
// protoc and protoc-gen-go on PATH).
package onnx

//go:generate protoc -I.. --go_out=.. --go_opt=paths=source_relative ../onnx/onnx.proto
