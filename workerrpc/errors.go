package workerrpc

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/worker"
)

// ErrorDomain is the ErrorInfo domain of the worker service's errors.
const ErrorDomain = "worker.infaas"

// sentinels is the one table between the worker's sentinel errors and the
// wire: a gRPC code for generic clients, and an ErrorInfo reason that tells
// apart sentinels sharing a code (ErrNoMemory and ErrOverloaded are both
// ResourceExhausted; ErrNotReady, ErrDraining and ErrStopped all
// Unavailable). An error matching several sentinels takes the first row.
var sentinels = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{worker.ErrNoMemory, codes.ResourceExhausted, "NO_MEMORY"},
	{worker.ErrOverloaded, codes.ResourceExhausted, "OVERLOADED"},
	{worker.ErrUnknownReplica, codes.NotFound, "UNKNOWN_REPLICA"},
	{worker.ErrNotReady, codes.Unavailable, "NOT_READY"},
	{worker.ErrDraining, codes.Unavailable, "DRAINING"},
	{worker.ErrBadInput, codes.InvalidArgument, "BAD_INPUT"},
	{worker.ErrIncompatible, codes.FailedPrecondition, "INCOMPATIBLE"},
	{worker.ErrStopped, codes.Unavailable, "STOPPED"},
}

// toStatus converts a worker error into the gRPC status the server
// returns: the sentinel's code and reason with the error's message, or
// Canceled/DeadlineExceeded for context errors, or Internal. nil stays nil.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			st, derr := status.New(s.code, err.Error()).WithDetails(&errdetails.ErrorInfo{Reason: s.reason, Domain: ErrorDomain})
			if derr != nil { // cannot happen: ErrorInfo always marshals
				return status.Error(s.code, err.Error())
			}
			return st.Err()
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus converts an error returned by a worker RPC back into the
// worker's terms. A status carrying one of the sentinels' reasons becomes
// an error that reads as the server's message and satisfies errors.Is with
// that sentinel; Canceled and DeadlineExceeded satisfy errors.Is with the
// context errors. Every result still yields its gRPC status to
// status.FromError. Errors without a mapping (transport failures,
// Internal) come back as they are. nil stays nil.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var cause error
	switch st.Code() {
	case codes.Canceled:
		cause = context.Canceled
	case codes.DeadlineExceeded:
		cause = context.DeadlineExceeded
	default:
		cause = sentinelOf(st)
	}
	if cause == nil {
		return err
	}
	return &remoteError{msg: st.Message(), cause: cause, status: err}
}

// sentinelOf finds the sentinel named by st's ErrorInfo reason, checking
// that the code agrees; nil if there is none.
func sentinelOf(st *status.Status) error {
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != ErrorDomain {
			continue
		}
		for _, s := range sentinels {
			if s.reason == info.GetReason() && s.code == st.Code() {
				return s.err
			}
		}
	}
	return nil
}

// remoteError is a worker error that crossed the wire: it reads as the
// worker's message and unwraps to both the sentinel (or context error) and
// the gRPC status error.
type remoteError struct {
	msg    string
	cause  error
	status error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return []error{e.cause, e.status} }
