package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/internal/zootest"
)

// TestAPIKeys: with --auth, a request without a known key is 401
// (Unauthenticated on gRPC) and does nothing, a user key lists but may
// not delete (403), an admin key may; probes need no key. Without --auth
// the server refuses to listen beyond loopback unless --insecure.
func TestAPIKeys(t *testing.T) {
	const admin, user = "admin-key-e2e-0123456789", "user-key-e2e-0123456789"
	keys := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keys, []byte(`{"keys": [{"key": "`+admin+`", "tenant": "ops", "role": "admin"},
		{"key": "`+user+`", "tenant": "team-a", "role": "user"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "--auth", keys)
	c := ctx(t)
	var apiErr *client.Error
	if _, err := s.c.WithKey("").Models(c); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("no key: %v", err)
	}
	if _, err := client.New(s.addr).WithKey("not-a-key-0123456789").Models(c); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := client.New(s.addr).WithKey(user).Models(c); err != nil {
		t.Errorf("user key, list: %v", err)
	}
	if err := client.New(s.addr).WithKey(user).Delete(c, "anything"); !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(apiErr.Message, "admin") {
		t.Errorf("user key, delete: %v", err)
	}
	if err := client.New(s.addr).WithKey(admin).Delete(c, "anything"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("admin key, delete of an unknown model: want 404 (authorised, then not found), got %v", err)
	}

	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g := pb.NewGRPCInferenceServiceClient(conn)
	gctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.ServerLive(gctx, &pb.ServerLiveRequest{}); err != nil {
		t.Errorf("gRPC liveness needs no key: %v", err)
	}
	if _, err := g.ModelMetadata(gctx, &pb.ModelMetadataRequest{Name: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without a key: %v", err)
	}
	authed := metadata.AppendToOutgoingContext(gctx, "authorization", "Bearer "+user)
	if _, err := g.ModelMetadata(authed, &pb.ModelMetadataRequest{Name: "x"}); status.Code(err) != codes.NotFound {
		t.Errorf("gRPC with a user key: want NotFound for an unknown model, got %v", err)
	}

	out, err := exec.Command(infaasBinary(t), "serve", "--data", t.TempDir(), "--http", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without API keys") {
		t.Errorf("a public address without --auth: %v\n%s", err, out)
	}
}

// TestTenants: an architecture belongs to the tenant that registered it
// (another tenant's admin may not delete it), and a use case shared
// between tenants admits only measured accuracies — a declared 100 %
// from one tenant must not take over another's queries.
func TestTenants(t *testing.T) {
	const a, b = "tenant-a-admin-0123456789", "tenant-b-admin-0123456789"
	keys := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keys, []byte(`{"keys": [{"key": "`+a+`", "tenant": "a", "role": "admin"},
		{"key": "`+b+`", "tenant": "b", "role": "admin"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "--auth", keys)
	c := ctx(t)
	ca, cb := client.New(s.addr).WithKey(a), client.New(s.addr).WithKey(b)
	register := func(cl *client.Client, name, dataset string, declared bool) error {
		reg := client.Registration{Name: name, Task: "classification", Dataset: dataset,
			ModelPath: zootest.Path(t, "models/mnist-mlp-s.onnx"), InputScale: pixelScale}
		if declared {
			reg.Accuracy = ptr(100.0)
		} else {
			reg.ValidationDir = zootest.Path(t, "data/mnist")
		}
		if _, err := cl.Register(c, reg); err != nil {
			return err
		}
		_, err := cl.Wait(c, name, nil)
		return err
	}
	var apiErr *client.Error
	// Tenant a's declared accuracy in its own use case is its business.
	if err := register(ca, "a-declared", "mnist", true); err != nil {
		t.Fatal(err)
	}
	if arch, err := ca.Architecture(c, "a-declared"); err != nil || arch.Owner != "a" {
		t.Fatalf("owner: %+v, %v", arch, err)
	}
	// Tenant b may not join it, measured or not: a's declared 100 %
	// would take b's queries.
	for _, declared := range []bool{true, false} {
		err := register(cb, fmt.Sprintf("b-joins-%v", declared), "mnist", declared)
		if !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(apiErr.Message, "shared") {
			t.Errorf("tenant b joining a's use case (declared %v): %v", declared, err)
		}
	}
	// Measured accuracies share a use case.
	if err := register(ca, "a-measured", "digits", false); err != nil {
		t.Fatal(err)
	}
	if err := register(cb, "b-measured", "digits", false); err != nil {
		t.Errorf("measured joining measured: %v", err)
	}
	if err := register(cb, "b-declared", "digits", true); !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(apiErr.Message, "measured") {
		t.Errorf("declared joining a shared use case: %v", err)
	}
	// Only the owner deletes.
	if err := cb.Delete(c, "a-declared"); !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(apiErr.Message, "belongs to tenant a") {
		t.Errorf("tenant b deleting a's architecture: %v", err)
	}
	if err := ca.Delete(c, "a-declared"); err != nil {
		t.Errorf("owner deleting: %v", err)
	}
}
