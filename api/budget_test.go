package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/infaas/infaas/api/inferencepb"
)

// TestBodyBudgetBoundsAllBodies: with a budget of 1.5 MiB and bodies of
// up to 1 MiB, a client holding 1 MiB of buffer (announced, half sent,
// paused) leaves no room for a second: it is refused with 503, Retry-After
// and a message that says to retry; once the first is answered its memory
// is back and the second goes through.
func TestBodyBudgetBoundsAllBodies(t *testing.T) {
	mux := http.NewServeMux()
	RegisterInferenceBudget(mux, &fakeBackend{}, 1<<20, NewBodyBudget(3<<19))
	srv, _ := startServed(t, mux)

	request := `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`
	body := request + strings.Repeat(" ", 1<<20-len(request)-1)
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", srv.URL+"/v2/models/resnet50/infer", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	first := make(chan int, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err != nil {
			first <- -1
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	if _, err := pw.Write([]byte(body[:len(body)/2])); err != nil {
		t.Fatal(err)
	}

	second := func() (int, http.Header, string) {
		resp, err := http.Post(srv.URL+"/v2/models/resnet50/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	// The first request's buffer is taken once its handler runs; until
	// then the second may still fit, so wait for the refusal.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, hdr, msg := second()
		if code == http.StatusServiceUnavailable {
			if hdr.Get("Retry-After") == "" || !strings.Contains(msg, "retry") || !strings.Contains(msg, "--max-body-memory") {
				t.Errorf("refusal: Retry-After %q, body %s; want a retry hint naming --max-body-memory", hdr.Get("Retry-After"), msg)
			}
			break
		}
		if code != http.StatusOK {
			t.Fatalf("second request: %d %s", code, msg)
		}
		if time.Now().After(deadline) {
			t.Fatal("the second body was never refused while the first held the budget")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if _, err := pw.Write([]byte(body[len(body)/2:])); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	if code, _, msg := second(); code != http.StatusOK {
		t.Fatalf("after the first was answered: %d %s; want its memory back", code, msg)
	}
}

// TestReadAllHoldsItsBuffer: the hold is the buffer's capacity as it
// grows, within the budget; all of it comes back on release, and a growth
// the budget cannot give fails with ErrBodyMemory.
func TestReadAllHoldsItsBuffer(t *testing.T) {
	b := NewBodyBudget(1 << 20)
	h := &hold{b: b}
	buf, err := readAll(strings.NewReader(strings.Repeat("x", 100_000)), 512, 0, h)
	if err != nil || len(buf) != 100_000 {
		t.Fatalf("read %d bytes, %v", len(buf), err)
	}
	if h.n != int64(cap(buf)) {
		t.Errorf("holds %d bytes for a buffer of capacity %d", h.n, cap(buf))
	}
	if b.used.Load() != h.n {
		t.Errorf("the budget counts %d bytes for a hold of %d", b.used.Load(), h.n)
	}
	h.release()
	if b.used.Load() != 0 {
		t.Fatalf("release left %d bytes counted", b.used.Load())
	}

	h = &hold{b: b}
	if _, err := readAll(strings.NewReader(strings.Repeat("x", 2<<20)), 512, 0, h); !errors.Is(err, ErrBodyMemory) {
		t.Errorf("a body past the budget: %v; want ErrBodyMemory", err)
	}
	h.release()
}

// TestBodyBudgetBoundsGRPCRequests: gRPC inference requests take their size
// from the budget the HTTP bodies share while they are served; one that
// does not fit is refused with Unavailable, a retry hint naming
// --max-body-memory and a RetryInfo, and is served once the memory is back.
func TestBodyBudgetBoundsGRPCRequests(t *testing.T) {
	budget := NewBodyBudget(3 << 19) // 1.5 MiB: one 1 MiB request, not two
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	var held atomic.Bool
	fb := &fakeBackend{respond: func(r *InferRequest) *InferResponse {
		if held.CompareAndSwap(false, true) {
			arrived <- struct{}{}
			<-release
		}
		return &InferResponse{Outputs: []Tensor{{Name: "y", Datatype: "FP32", Shape: []int64{1}, Data: rawFP32(1)}}}
	}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterGRPCInferenceServiceServer(srv, NewInferenceServer(fb).WithBodyBudget(budget))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := pb.NewGRPCInferenceServiceClient(conn)
	const n = 1 << 18 // FP32 values: 1 MiB
	req := &pb.ModelInferRequest{ModelName: "resnet50", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{n}}},
		RawInputContents: [][]byte{make([]byte, 4*n)}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := make(chan error, 1)
	go func() {
		_, err := client.ModelInfer(ctx, req)
		first <- err
	}()
	select {
	case <-arrived:
	case err := <-first:
		t.Fatalf("the first request ended before it was held: %v", err)
	}
	_, err = client.ModelInfer(ctx, req)
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "--max-body-memory") || !strings.Contains(st.Message(), "retry") {
		t.Errorf("second request while the first holds the budget: %v; want Unavailable naming --max-body-memory with a retry hint", err)
	}
	var retry bool
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			retry = true
		}
	}
	if !retry {
		t.Errorf("the refusal carries no RetryInfo: %v", st.Details())
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
	if _, err := client.ModelInfer(ctx, req); err != nil {
		t.Errorf("the same request once the memory is back: %v", err)
	}
	if used := budget.used.Load(); used != 0 {
		t.Errorf("%d bytes still charged after every request was answered", used)
	}
}
