package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/internal/testredis"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/workerrpc/workerpb"
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

	// --rate-limit: a tenant over its token bucket gets 429 with
	// Retry-After and no work done; after that wait it is served again,
	// and another tenant was never limited.
	r := startServer(t, t.TempDir(), "--auth", keys, "--rate-limit", "1")
	list := func(key string) (int, string) {
		req, err := http.NewRequestWithContext(c, http.MethodGet, "http://"+r.addr+"/v1/models", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	limited, retry := 0, ""
	for range 10 {
		if code, after := list(user); code == http.StatusTooManyRequests {
			limited, retry = limited+1, after
		} else if code != http.StatusOK {
			t.Fatalf("rate-limited server, user key: HTTP %d", code)
		}
	}
	if limited == 0 || retry == "" {
		t.Fatalf("10 requests at once against 1/s (bursts of 2): %d answered 429, Retry-After %q", limited, retry)
	}
	if code, _ := list(admin); code != http.StatusOK {
		t.Errorf("the other tenant while team-a is limited: HTTP %d", code)
	}
	wait, err := strconv.Atoi(retry)
	if err != nil || wait < 1 {
		t.Fatalf("Retry-After %q: want whole seconds", retry)
	}
	time.Sleep(time.Duration(wait) * time.Second)
	if code, _ := list(user); code != http.StatusOK {
		t.Errorf("after waiting Retry-After (%ds): HTTP %d", wait, code)
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

// TestWorkerPlaneIsPrivate: the worker service (load, unload, infer,
// state) is not on the public gRPC port; the worker plane — the
// controller's registry and each worker's own service — refuses a call
// without the cluster token or with a wrong one, and the server serves
// throughout. Without a token, serve refuses a cluster address beyond
// loopback (and a worker such a listen address) unless --insecure, which
// also lets the public ports listen beyond loopback without --auth.
func TestWorkerPlaneIsPrivate(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.registerZoo(t, "mnist-mlp-s")
	c := ctx(t)
	ws, err := s.c.Workers(c)
	if err != nil || len(ws) == 0 || ws[0].Address == "" {
		t.Fatalf("workers: %+v, %v", ws, err)
	}
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	wrong := metadata.AppendToOutgoingContext(c, "authorization", "Bearer not-the-cluster-token")
	for _, tc := range []struct {
		what, addr string
		ctx        context.Context
		want       codes.Code
	}{
		{"the worker service on the public gRPC port", s.grpc, c, codes.Unimplemented},
		{"a worker without the token", ws[0].Address, c, codes.Unauthenticated},
		{"a worker with a wrong token", ws[0].Address, wrong, codes.Unauthenticated},
	} {
		_, err := workerpb.NewWorkerClient(dial(tc.addr)).Unload(tc.ctx, &workerpb.UnloadRequest{})
		if status.Code(err) != tc.want {
			t.Errorf("%s: Unload answered %v, want %s", tc.what, err, tc.want)
		}
	}
	for _, tc := range []struct {
		what, addr string
		ctx        context.Context
		want       codes.Code
	}{
		{"the registry on the public gRPC port", s.grpc, c, codes.Unimplemented},
		{"the registry without the token", s.cluster, c, codes.Unauthenticated},
		{"the registry with a wrong token", s.cluster, wrong, codes.Unauthenticated},
	} {
		stream, err := workerpb.NewRegistryClient(dial(tc.addr)).Join(tc.ctx)
		if err == nil {
			_ = stream.Send(&workerpb.WorkerReport{Hello: &workerpb.Hello{WorkerId: "intruder", Address: "127.0.0.1:1"}})
			_, err = stream.Recv()
		}
		if status.Code(err) != tc.want {
			t.Errorf("%s: Join answered %v, want %s", tc.what, err, tc.want)
		}
	}
	if _, err := s.c.Infer(c, "mnist-mlp-s", samples(mnist(t), 0, 1), nil); err != nil {
		t.Fatalf("a query after the refused calls: %v", err)
	}
	if after, err := s.c.Workers(c); err != nil || len(after) != len(ws) {
		t.Fatalf("workers after the refused calls: %+v, %v; want %d", after, err, len(ws))
	}

	open := func(args ...string) (string, error) {
		cmd := exec.Command(infaasBinary(t), args...)
		cmd.Env = append(os.Environ(), "INFAAS_CLUSTER_TOKEN=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := open("serve", "--data", t.TempDir(), "--workers", "", "--cluster", "0.0.0.0:0"); err == nil || !strings.Contains(out, "without a cluster token") {
		t.Errorf("serve with an open worker plane beyond loopback: %v\n%s", err, out)
	}
	if out, err := open("worker", "--controller", "127.0.0.1:1", "--repository", t.TempDir(), "--listen", "0.0.0.0:0"); err == nil || !strings.Contains(out, "without a cluster token") {
		t.Errorf("worker listening beyond loopback without a token: %v\n%s", err, out)
	}
	// --insecure accepts both: a controller with no workers and no token
	// starts, listens beyond loopback, and says what is open.
	httpAddr := freeAddr(t)
	cmd := exec.Command(infaasBinary(t), "controller", "--data", t.TempDir(), "--store", "redis://"+testredis.Start(t)+"/0",
		"--insecure", "--http", httpAddr, "--grpc", "0.0.0.0:"+port(t, freeAddr(t)), "--cluster", "0.0.0.0:"+port(t, freeAddr(t)), "--metrics", "")
	cmd.Env = append(os.Environ(), "INFAAS_CLUSTER_TOKEN=")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFor(t, "the --insecure controller live", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/v2/health/live")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if !strings.Contains(log.String(), "the worker plane is open") {
		t.Errorf("a controller with an open worker plane (--insecure) logged no warning:\n%s", log)
	}
}

func port(t testing.TB, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWriteTimeout: with --http-write-timeout, requests are served as
// before and the event stream outlives the timeout (it clears its own
// deadline): an event written long after the timeout still arrives. A
// write timeout below the read timeout is refused at start.
func TestWriteTimeout(t *testing.T) {
	const write = 2 * time.Second
	s := startServer(t, t.TempDir(), "--http-read-timeout", "1s", "--http-write-timeout", write.String(),
		"--autoscale", "--idle-unload", "1s", "--scale-cooldown", "1s")
	s.registerZoo(t, "mnist-mlp-s")
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	start := time.Now()
	late := make(chan events.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- s.c.Follow(c, 0, client.EventFilter{}, func(e events.Event) error {
			if time.Since(start) > 2*write {
				late <- e
			}
			return nil
		})
	}()
	time.Sleep(2 * write)
	// The query loads a replica; a second idle, the autoscaler unloads
	// it: events written after the stream's write timeout has long passed.
	if _, err := s.c.Infer(ctx(t), "mnist-mlp-s", samples(mnist(t), 0, 1), nil); err != nil {
		t.Fatalf("a query with a write timeout: %v", err)
	}
	select {
	case e := <-late:
		t.Logf("event %d (%s %s) arrived %s after the stream opened", e.Seq, e.Source, e.Action, time.Since(start).Round(time.Millisecond))
	case err := <-done:
		t.Fatalf("the event stream ended after %s (write timeout %s): %v", time.Since(start).Round(time.Millisecond), write, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no event arrived on the stream in the 30 s after the query")
	}
	cancel()
	<-done

	out, err := exec.Command(infaasBinary(t), "serve", "--data", t.TempDir(), "--http-read-timeout", "5m", "--http-write-timeout", "1m").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--http-write-timeout 1m0s is below --http-read-timeout") {
		t.Errorf("a write timeout below the read timeout: %v\n%s", err, out)
	}
}
