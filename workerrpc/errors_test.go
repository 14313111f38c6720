package workerrpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/worker"
)

// TestErrorMapping sends every worker sentinel through toStatus and back
// through fromStatus: the code is the documented one, the sentinel and the
// message survive, and no other sentinel matches.
func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
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
	} {
		t.Run(tc.reason, func(t *testing.T) {
			in := fmt.Errorf("infer m#1: %w: details", tc.err)
			wire := toStatus(in)
			st, _ := status.FromError(wire)
			if st.Code() != tc.code || st.Message() != in.Error() {
				t.Errorf("status %v %q, want %v %q", st.Code(), st.Message(), tc.code, in.Error())
			}
			if got := reasonOf(st); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
			out := fromStatus(wire)
			checkIs(t, out, tc.err)
			if out.Error() != in.Error() {
				t.Errorf("message %q, want the worker's %q", out.Error(), in.Error())
			}
			if code := status.Code(out); code != tc.code {
				t.Errorf("status.Code of the client's error = %v, want %v", code, tc.code)
			}
		})
	}
}

// TestErrorMappingOthers covers what is not a worker sentinel.
func TestErrorMappingOthers(t *testing.T) {
	withInfo := func(code codes.Code, domain, reason string) error {
		st, err := status.New(code, "msg").WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	for _, tc := range []struct {
		name     string
		wire     error // what the client receives
		code     codes.Code
		is       error // nil: no sentinel or context error matches
		sameWire bool  // fromStatus returns wire itself
	}{
		{"canceled", toStatus(fmt.Errorf("request left the queue: %w", context.Canceled)), codes.Canceled, context.Canceled, false},
		{"deadline", toStatus(fmt.Errorf("fetch graph: %w", context.DeadlineExceeded)), codes.DeadlineExceeded, context.DeadlineExceeded, false},
		{"internal", toStatus(errors.New("run batch: onnxruntime failed")), codes.Internal, nil, true},
		{"transport failure", status.Error(codes.Unavailable, "connection refused"), codes.Unavailable, nil, true},
		{"foreign domain", withInfo(codes.Unavailable, "other.example", "STOPPED"), codes.Unavailable, nil, true},
		{"reason with the wrong code", withInfo(codes.Internal, ErrorDomain, "STOPPED"), codes.Internal, nil, true},
		{"unknown reason", withInfo(codes.Unavailable, ErrorDomain, "NEW_REASON"), codes.Unavailable, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := status.Code(tc.wire); code != tc.code {
				t.Errorf("wire code %v, want %v", code, tc.code)
			}
			out := fromStatus(tc.wire)
			if tc.sameWire && out != tc.wire {
				t.Errorf("fromStatus changed an unmapped error: %v", out)
			}
			if tc.is != nil && !errors.Is(out, tc.is) {
				t.Errorf("%v does not match %v", out, tc.is)
			}
			for _, s := range allSentinels {
				if errors.Is(out, s) {
					t.Errorf("%v matches %v", out, s)
				}
			}
			if code := status.Code(out); code != tc.code {
				t.Errorf("status.Code of the client's error = %v, want %v", code, tc.code)
			}
		})
	}
	if toStatus(nil) != nil || fromStatus(nil) != nil {
		t.Error("nil did not stay nil")
	}
	plain := errors.New("not a status")
	if fromStatus(plain) != plain {
		t.Error("fromStatus changed an error that carries no status")
	}
}

func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}
