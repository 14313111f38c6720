package workerrpc

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenEnv names the environment variable that carries the cluster token
// to processes a provider starts (never a command-line flag: those are
// visible to every user of the machine).
const TokenEnv = "INFAAS_CLUSTER_TOKEN"

// The worker plane (the Worker service on each worker, the Registry on
// each controller) is private: every call carries the cluster's shared
// token as "authorization: Bearer TOKEN" metadata and is refused with
// Unauthenticated without it. An empty token turns the check off (tests
// and trusted loopback setups).

// ServerAuth returns the server options that check the token on every
// unary and streaming call.
func ServerAuth(token string) []grpc.ServerOption {
	if token == "" {
		return nil
	}
	check := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, v := range md.Get("authorization") {
			got, ok := strings.CutPrefix(v, "Bearer ")
			if ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1 {
				return nil
			}
		}
		return status.Error(codes.Unauthenticated, "the worker plane needs the cluster token (authorization: Bearer …); set "+TokenEnv+" to the controller's token")
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// ClientAuth returns the dial options that send the token on every call.
func ClientAuth(token string) []grpc.DialOption {
	if token == "" {
		return nil
	}
	add := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(add(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return st(add(ctx), desc, cc, method, opts...)
		}),
	}
}
