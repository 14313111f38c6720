package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

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
