package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/infaas/infaas/controller"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/registrar"
)

// unreachable is an error as a RedisStore returns it when the server is down.
var unreachable = fmt.Errorf("get use case classification/mnist: %w (redis://127.0.0.1:6379/0): dial tcp 127.0.0.1:6379: %w",
	metadata.ErrUnavailable, syscall.ECONNREFUSED)

func TestUnavailableStoreIs503(t *testing.T) {
	for _, err := range []error{
		unreachable,
		fmt.Errorf("delete lenet: %w", unreachable),
		// Unreachable wins over what else the error may say.
		fmt.Errorf("%w: %w", registrar.ErrInvalid, unreachable),
		errors.Join(metadata.ErrNotFound, unreachable),
	} {
		if got := Status(err); got != http.StatusServiceUnavailable {
			t.Errorf("Status(%q) = %d; want 503", err, got)
		}
		if got := Code(err); got != codes.Unavailable {
			t.Errorf("Code(%q) = %v; want Unavailable", err, got)
		}
		msg := Message(err)
		if !strings.HasPrefix(msg, err.Error()) || !strings.HasSuffix(msg, "; try again") {
			t.Errorf("Message(%q) = %q; want the error followed by %q", err, msg, "; try again")
		}
	}
	if got := Message(metadata.ErrNotFound); got != metadata.ErrNotFound.Error() {
		t.Errorf("Message of another error = %q; want it unchanged", got)
	}
	if got := Message(fmt.Errorf("%w; try again", metadata.ErrUnavailable)); strings.Count(got, "try again") != 1 {
		t.Errorf("Message = %q; want one %q", got, "try again")
	}
}

func TestUnavailableStoreAnswers(t *testing.T) {
	rec := httptest.NewRecorder()
	writeError(rec, unreachable)
	var body map[string]string
	if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body["error"], "the metadata store is unreachable") ||
		!strings.Contains(body["error"], "connection refused") || !strings.HasSuffix(body["error"], "try again") {
		t.Fatalf("HTTP answer %d %q", rec.Code, body["error"])
	}
	st, _ := status.FromError(GRPCError(unreachable))
	if st.Code() != codes.Unavailable || !strings.HasSuffix(st.Message(), "try again") || !strings.Contains(st.Message(), "127.0.0.1:6379") {
		t.Fatalf("gRPC answer %v %q", st.Code(), st.Message())
	}
}

// TestRetryHints: a retryable refusal says when to come back — Retry-After
// on HTTP, RetryInfo on gRPC — and a permanent one does not.
func TestRetryHints(t *testing.T) {
	over := fmt.Errorf("queue full: %w", controller.ErrOverloaded)
	rec := httptest.NewRecorder()
	writeError(rec, over)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != RetryAfterSeconds {
		t.Errorf("overloaded: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	st, _ := status.FromError(GRPCError(over))
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if st.Code() != codes.Unavailable || retry == nil || retry.GetRetryDelay().AsDuration() != time.Second {
		t.Errorf("gRPC: %v, retry info %v", st.Code(), retry)
	}
	rec = httptest.NewRecorder()
	writeError(rec, fmt.Errorf("nope: %w", controller.ErrUnknownModel))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Retry-After") != "" {
		t.Errorf("unknown model: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if st, _ := status.FromError(GRPCError(controller.ErrUnknownModel)); len(st.Details()) != 0 {
		t.Errorf("a permanent error carries retry details: %v", st.Details())
	}
}

// slowBody sends a few bytes, then blocks until closed: a client that
// announced a large body and is sending it slowly.
type slowBody struct {
	sent    bool
	waiting chan struct{} // closed once the reader waits for more
	stop    chan struct{}
}

func (s *slowBody) Read(p []byte) (int, error) {
	if !s.sent {
		s.sent = true
		return copy(p, `{"inputs": [`), nil
	}
	close(s.waiting)
	<-s.stop
	return 0, io.ErrUnexpectedEOF
}

// TestReadBodyAllocatesAsDataArrives: a request announcing 60 MiB that
// sends a dozen bytes costs the server about a megabyte, not 60.
func TestReadBodyAllocatesAsDataArrives(t *testing.T) {
	body := &slowBody{waiting: make(chan struct{}), stop: make(chan struct{})}
	r := httptest.NewRequest(http.MethodPost, "/v2/models/m/infer", body)
	r.ContentLength = 60 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan error, 1)
	go func() { _, err := readBody(httptest.NewRecorder(), r, 64<<20, &hold{}); done <- err }()
	<-body.waiting // the server holds its buffer and waits for the rest
	runtime.ReadMemStats(&after)
	close(body.stop)
	if err := <-done; err == nil {
		t.Fatal("a body cut short was accepted")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("a slow client announcing 60 MiB made the server allocate %d MiB before sending it", grew>>20)
	}
}
