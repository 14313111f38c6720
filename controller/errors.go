package controller

import "errors"

// Sentinel errors of the query path; api maps each to an HTTP status and a
// gRPC code.
var (
	// ErrUnknownModel: the name is no variant, architecture or use case. (404, NotFound)
	ErrUnknownModel = errors.New("unknown model")
	// ErrBadInput: the tensors do not fit the model (shape, datatype, size). (400, InvalidArgument)
	ErrBadInput = errors.New("invalid input")
	// ErrBadRequirements: impossible requirement values (negative latency, accuracy over 100). (400, InvalidArgument)
	ErrBadRequirements = errors.New("invalid requirements")
	// ErrUnsatisfiable: no variant can meet the requirements and the request is strict,
	// or the batch exceeds every variant's max batch. (422, FailedPrecondition)
	ErrUnsatisfiable = errors.New("requirements cannot be met")
	// ErrOverloaded: admission control refused the request; retry later. (503, Unavailable)
	ErrOverloaded = errors.New("overloaded")
	// ErrNotReady: the model exists but no replica can serve it yet. (503, Unavailable)
	ErrNotReady = errors.New("not ready")
)
