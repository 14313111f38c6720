package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/infaas/infaas/controller"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/registrar"
)

// ErrBadRequest marks malformed requests detected by the API itself.
var ErrBadRequest = errors.New("bad request")

// errTooLarge marks a body over the configured limit.
var errTooLarge = errors.New("request body too large")

// Status maps an error to its HTTP status code. An unreachable metadata
// store is 503 whatever else the error says: the request may succeed later.
func Status(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, metadata.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.As(err, &mbe), errors.Is(err, errTooLarge), errors.Is(err, registrar.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadRequest), errors.Is(err, registrar.ErrInvalid), errors.Is(err, registrar.ErrNotONNX),
		errors.Is(err, metadata.ErrInvalid), errors.Is(err, controller.ErrBadInput), errors.Is(err, controller.ErrBadRequirements):
		return http.StatusBadRequest
	case errors.Is(err, registrar.ErrForbidden), errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, registrar.ErrNotFound), errors.Is(err, metadata.ErrNotFound), errors.Is(err, controller.ErrUnknownModel):
		return http.StatusNotFound
	case errors.Is(err, controller.ErrOverloaded), errors.Is(err, controller.ErrNotReady), errors.Is(err, ErrBodyMemory):
		return http.StatusServiceUnavailable
	case errors.Is(err, controller.ErrUnsatisfiable):
		return http.StatusUnprocessableEntity
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, registrar.ErrExists), errors.Is(err, metadata.ErrExists), errors.Is(err, metadata.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, registrar.ErrRejected), errors.Is(err, registrar.ErrContract),
		errors.Is(err, registrar.ErrValidation), errors.Is(err, registrar.ErrUnreachable):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// Code maps an error to its gRPC status code, consistently with Status.
func Code(err error) codes.Code {
	switch Status(err) {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.AlreadyExists
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusUnprocessableEntity:
		return codes.FailedPrecondition
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	}
	if errors.Is(err, context.Canceled) {
		return codes.Canceled
	}
	return codes.Internal
}

// Message is the text an answer carries for err: err's own, plus what to
// do about it where that is not obvious (an unreachable metadata store:
// "...; try again").
func Message(err error) string {
	msg := err.Error()
	if errors.Is(err, metadata.ErrUnavailable) && !strings.Contains(msg, "try again") {
		msg += "; try again"
	}
	return msg
}

// GRPCError converts err into a gRPC status error with its code; an
// Unavailable one carries a RetryInfo detail (retry after a second).
func GRPCError(err error) error {
	if err == nil {
		return nil
	}
	st := status.New(Code(err), Message(err))
	if st.Code() == codes.Unavailable {
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// writeError answers {"error": "..."} (the Open Inference Protocol's error shape).
func writeError(w http.ResponseWriter, err error) {
	st := Status(err)
	if st == http.StatusServiceUnavailable {
		// Overloaded, not ready yet, or the store is unreachable: all
		// clear up by themselves. Triton and KServe answer these with
		// 503 too; Retry-After says when to come back.
		w.Header().Set("Retry-After", RetryAfterSeconds)
	}
	writeJSON(w, st, map[string]string{"error": Message(err)})
}

// RetryAfterSeconds is the Retry-After of a 503 (and the gRPC RetryInfo
// delay of an Unavailable): overload and loads clear within about a
// second, the autoscaler's step.
const RetryAfterSeconds = "1"

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
