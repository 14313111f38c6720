package api

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRecoverUnary(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ic := RecoverUnary(log)
	_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic became %v, want Internal", err)
	}
	resp, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		return "ok", nil
	})
	if resp != "ok" || err != nil {
		t.Fatalf("pass-through: %v, %v", resp, err)
	}
}
