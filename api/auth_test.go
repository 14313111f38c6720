package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func writeKeys(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	adminKey = "admin-key-0123456789"
	userKey  = "user-key-0123456789ab"
)

func testKeys(t *testing.T) *Keys {
	t.Helper()
	k, err := LoadKeys(writeKeys(t, `{"keys": [{"key": "`+adminKey+`", "tenant": "ops", "role": "admin"},
		{"key": "`+userKey+`", "tenant": "team-a", "role": "user"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLoadKeysRejects(t *testing.T) {
	for _, bad := range []struct{ body, want string }{
		{`{"keys": [{"key": "short", "tenant": "a", "role": "user"}]}`, "shorter than"},
		{`{"keys": [{"key": "0123456789abcdef", "role": "user"}]}`, "no tenant"},
		{`{"keys": [{"key": "0123456789abcdef", "tenant": "a", "role": "root"}]}`, "want admin or user"},
		{`{"keys": []}`, "no keys"},
		{`{"keys": [{"key": "0123456789abcdef", "tenant": "a", "role": "user", "extra": 1}]}`, "unknown field"},
		{`{"keys": [{"key": "0123456789abcdef", "tenant": "a", "role": "user"}, {"key": "0123456789abcdef", "tenant": "b", "role": "user"}]}`, "twice"},
	} {
		if _, err := LoadKeys(writeKeys(t, bad.body)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: got %v, want an error containing %q", bad.body, err, bad.want)
		}
	}
}

// TestKeysHTTP: 401 without a known key, 403 for a user key on an admin
// route, the request served otherwise — and nothing runs for a refusal.
func TestKeysHTTP(t *testing.T) {
	k := testKeys(t)
	ran := 0
	h := k.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran++
		if p, ok := PrincipalFrom(r.Context()); !ok || p.Tenant == "" {
			t.Errorf("no principal in the context of %s", r.URL.Path)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	open := k.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	for _, c := range []struct {
		method, path, key string
		want              int
	}{
		{"POST", "/v2/models/m/infer", "", http.StatusUnauthorized},
		{"POST", "/v2/models/m/infer", "wrong-key-0123456789", http.StatusUnauthorized},
		{"POST", "/v2/models/m/infer", userKey, http.StatusNoContent},
		{"GET", "/v1/models", userKey, http.StatusNoContent},
		{"POST", "/v1/models", userKey, http.StatusForbidden},
		{"DELETE", "/v1/models/m", userKey, http.StatusForbidden},
		{"GET", "/v1/workers", userKey, http.StatusForbidden},
		{"GET", "/v1/events", userKey, http.StatusForbidden},
		{"POST", "/v1/models", adminKey, http.StatusNoContent},
		{"GET", "/v1/workers", adminKey, http.StatusNoContent},
	} {
		before := ran
		r := httptest.NewRequest(c.method, c.path, nil)
		if c.key != "" {
			r.Header.Set("Authorization", "Bearer "+c.key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != c.want {
			t.Errorf("%s %s with %q: %d %s, want %d", c.method, c.path, c.key, rec.Code, rec.Body.String(), c.want)
		}
		if rec.Code >= 400 && ran != before {
			t.Errorf("%s %s: the handler ran for a refused request", c.method, c.path)
		}
		if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	rec := httptest.NewRecorder()
	open.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/health/ready", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("readiness needs no key: %d", rec.Code)
	}
}

func TestKeysGRPC(t *testing.T) {
	k := testKeys(t)
	call := func(method, key string) error {
		ctx := context.Background()
		if key != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+key))
		}
		_, err := k.UnaryInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, req any) (any, error) {
			return nil, nil
		})
		return err
	}
	infer := "/inference.GRPCInferenceService/ModelInfer"
	if err := call(infer, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no key: %v", err)
	}
	if err := call(infer, "nope-nope-nope-nope"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unknown key: %v", err)
	}
	if err := call(infer, userKey); err != nil {
		t.Errorf("user key: %v", err)
	}
	if err := call("/inference.GRPCInferenceService/ServerLive", ""); err != nil {
		t.Errorf("liveness needs no key: %v", err)
	}
}

// TestRateLimit: a tenant over its bucket gets 429 with Retry-After (gRPC
// ResourceExhausted); another tenant is not affected.
func TestRateLimit(t *testing.T) {
	k := testKeys(t).WithRateLimit(0.5, 2) // two at once, then one every 2 s
	h := k.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	get := func(key string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/models", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for i := range 2 {
		if rec := get(userKey); rec.Code != http.StatusNoContent {
			t.Fatalf("request %d within the burst: %d %s", i, rec.Code, rec.Body.String())
		}
	}
	rec := get(userKey)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "team-a is over its rate limit") {
		t.Fatalf("over the limit: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	}
	if rec := get(adminKey); rec.Code != http.StatusNoContent {
		t.Fatalf("another tenant: %d", rec.Code)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+userKey))
	_, err := k.UnaryInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/inference.GRPCInferenceService/ModelInfer"},
		func(ctx context.Context, req any) (any, error) { return nil, nil })
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("gRPC over the limit: %v", err)
	}
}
