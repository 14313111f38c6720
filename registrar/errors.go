package registrar

import (
	"errors"

	"github.com/infaas/infaas/onnx"
)

// Sentinel errors; the API maps each to an HTTP status and a gRPC code.
var (
	ErrInvalid     = errors.New("invalid registration request") // 400
	ErrNotONNX     = onnx.ErrNotONNX                            // 400
	ErrTooLarge    = errors.New("upload too large")             // 413
	ErrExists      = errors.New("architecture already exists")  // 409
	ErrRejected    = errors.New("model rejected")               // 422
	ErrContract    = errors.New("input contract mismatch")      // 422
	ErrValidation  = errors.New("validation data mismatch")     // 422
	ErrUnreachable = errors.New("model URL unreachable")        // 422
	ErrNotFound    = errors.New("no such registration")         // 404
	ErrForbidden   = errors.New("forbidden")                    // 403
)
