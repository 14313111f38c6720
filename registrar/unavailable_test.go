package registrar_test

import (
	"bytes"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"

	"github.com/infaas/infaas/api"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/registrar"
	"github.com/infaas/infaas/repository"
)

// TestSubmitWithRedisDownIs503 stops Redis under a registrar: the
// submission fails with ErrUnavailable, which the API answers 503 with a
// message saying to try again.
func TestSubmitWithRedisDownIs503(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	store, err := metadata.OpenRedis(ctx, "redis://"+c.addr+"/0?max_retries=-1", metadata.WithKeyPrefix(c.prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	repo, err := repository.Open(ctx, c.repoDir)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	reg := registrar.New(registrar.DefaultConfig(), store, repo, newProfiler(t), quiet)

	raw := redis.NewClient(&redis.Options{Addr: c.addr})
	_ = raw.ShutdownNoSave(ctx).Err() // the server hangs up instead of answering
	raw.Close()
	if _, err := store.Architectures(ctx); !errors.Is(err, metadata.ErrUnavailable) {
		t.Fatalf("Architectures after SHUTDOWN: %v; want ErrUnavailable", err)
	}

	acc := 98.0
	model := zootest.Model(t, "mnist-8")
	_, err = reg.Submit(ctx, registrar.Request{Name: "mnist-8", Task: "classification", Dataset: "mnist", Model: model, DeclaredAccuracy: &acc})
	if !errors.Is(err, metadata.ErrUnavailable) {
		t.Fatalf("Submit with Redis down: %v; want ErrUnavailable", err)
	}
	if got := api.Status(err); got != http.StatusServiceUnavailable {
		t.Errorf("api.Status = %d; want 503", got)
	}
	if got := api.Code(err); got != codes.Unavailable {
		t.Errorf("api.Code = %v; want Unavailable", got)
	}

	// The same through the management API.
	mux := http.NewServeMux()
	(&api.Management{Store: store, Registrar: reg, MaxUploadBytes: 64 << 20, Log: quiet}).Register(mux)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range map[string]string{"name": "mnist-8", "task": "classification", "dataset": "mnist", "accuracy": fmt.Sprint(acc)} {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("model", "mnist-8.onnx")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(model)
	mw.Close()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/models", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("POST /v1/models with Redis down: %d %s; want 503", rec.Code, rec.Body)
	}
	if msg := rec.Body.String(); !strings.Contains(msg, "metadata store is unreachable") || !strings.Contains(msg, "try again") || !strings.Contains(msg, c.addr) {
		t.Errorf("answer %s should say the metadata store is unreachable at %s and to try again", msg, c.addr)
	}
}
