package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Role is what an API key may do.
type Role string

// Roles: an admin registers, deletes and manages (workers, decisions,
// events, profiling); a user queries and lists.
const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// Principal is who holds a key.
type Principal struct {
	Tenant string `json:"tenant"`
	Role   Role   `json:"role"`
}

// Keys authenticates requests by API key (`Authorization: Bearer KEY` on
// HTTP, the same in gRPC metadata). Only the keys' SHA-256 digests are
// kept in memory.
type Keys struct {
	byDigest map[[sha256.Size]byte]Principal

	// Per-tenant rate limits (WithRateLimit); nil: none.
	limit    rate.Limit
	burst    int
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// WithRateLimit limits every tenant to qps requests a second with bursts
// of burst (token buckets; probes are not counted). Over it, HTTP answers
// 429 with Retry-After and gRPC ResourceExhausted.
func (k *Keys) WithRateLimit(qps float64, burst int) *Keys {
	k.limit, k.burst = rate.Limit(qps), max(burst, 1)
	k.limiters = map[string]*rate.Limiter{}
	return k
}

// allow takes one token from tenant's bucket; it returns how long to wait
// when there is none.
func (k *Keys) allow(tenant string) (bool, time.Duration) {
	if k.limiters == nil {
		return true, 0
	}
	k.mu.Lock()
	l, ok := k.limiters[tenant]
	if !ok {
		l = rate.NewLimiter(k.limit, k.burst)
		k.limiters[tenant] = l
	}
	k.mu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// overLimit is the refusal of a request over its tenant's rate limit.
func (k *Keys) overLimit(tenant string, wait time.Duration) string {
	return fmt.Sprintf("tenant %s is over its rate limit of %g requests/s (bursts of %d); retry in %s", tenant, float64(k.limit), k.burst, wait.Round(time.Millisecond))
}

// retrySeconds is wait as a Retry-After value: whole seconds, at least 1.
func retrySeconds(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// keysFile is the keys file's shape.
type keysFile struct {
	Keys []struct {
		Key string `json:"key"`
		Principal
	} `json:"keys"`
}

// minKeyLen is the shortest key accepted: a key is a secret, not a name.
const minKeyLen = 16

// LoadKeys reads a keys file: JSON {"keys": [{"key": "...", "tenant":
// "team-a", "role": "admin"|"user"}, ...]}.
func LoadKeys(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	var f keysFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("keys file %s: %w (want {\"keys\": [{\"key\", \"tenant\", \"role\"}]})", path, err)
	}
	k := &Keys{byDigest: map[[sha256.Size]byte]Principal{}}
	for i, e := range f.Keys {
		switch {
		case len(e.Key) < minKeyLen:
			return nil, fmt.Errorf("keys file %s: key %d is shorter than %d characters", path, i, minKeyLen)
		case e.Tenant == "":
			return nil, fmt.Errorf("keys file %s: key %d has no tenant", path, i)
		case e.Role != RoleAdmin && e.Role != RoleUser:
			return nil, fmt.Errorf("keys file %s: key %d: role %q: want admin or user", path, i, e.Role)
		}
		d := sha256.Sum256([]byte(e.Key))
		if _, dup := k.byDigest[d]; dup {
			return nil, fmt.Errorf("keys file %s: key %d is listed twice", path, i)
		}
		k.byDigest[d] = e.Principal
	}
	if len(k.byDigest) == 0 {
		return nil, fmt.Errorf("keys file %s holds no keys", path)
	}
	return k, nil
}

// Errors of authentication, as answered: 401 and 403 (gRPC
// Unauthenticated and PermissionDenied).
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// lookup returns the principal of the bearer token in an Authorization
// value.
func (k *Keys) lookup(authorization string) (Principal, error) {
	scheme, key, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if authorization == "" {
		return Principal{}, fmt.Errorf("%w: send an API key as Authorization: Bearer KEY", ErrUnauthenticated)
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, fmt.Errorf("%w: the Authorization header must be Bearer KEY", ErrUnauthenticated)
	}
	p, found := k.byDigest[sha256.Sum256([]byte(strings.TrimSpace(key)))]
	if !found {
		return Principal{}, fmt.Errorf("%w: the API key is not known", ErrUnauthenticated)
	}
	return p, nil
}

type principalKey struct{}

// PrincipalFrom returns the principal an authenticated request carries.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// openPath: liveness and readiness answer without a key, as Triton's do,
// so that probes need no secret.
func openPath(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/v2/health/live" || r.URL.Path == "/v2/health/ready")
}

// adminPath: registering, deleting and the operator's views need the
// admin role; querying and listing models need a user key.
func adminPath(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v1/models") && r.Method != http.MethodGet:
		return true
	case strings.HasPrefix(p, "/v1/registrations"), strings.HasPrefix(p, "/v1/workers"),
		strings.HasPrefix(p, "/v1/decisions"), strings.HasPrefix(p, "/v1/events"), strings.HasPrefix(p, "/debug/"):
		return true
	}
	return false
}

// HTTP wraps next with key checks: 401 without a known key, 403 when the
// key's role may not do what the request asks. Nothing of next runs for a
// refused request.
func (k *Keys) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPath(r) {
			next.ServeHTTP(w, r)
			return
		}
		p, err := k.lookup(r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="infaas"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
			return
		}
		if ok, wait := k.allow(p.Tenant); !ok {
			w.Header().Set("Retry-After", retrySeconds(wait))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": k.overLimit(p.Tenant, wait)})
			return
		}
		if adminPath(r) && p.Role != RoleAdmin {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("%v: %s %s needs an admin key; tenant %s's key has the %s role",
				ErrForbidden, r.Method, r.URL.Path, p.Tenant, p.Role)})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// openMethod: the gRPC health calls answer without a key.
func openMethod(full string) bool {
	return strings.HasSuffix(full, "/ServerLive") || strings.HasSuffix(full, "/ServerReady")
}

func (k *Keys) grpcCheck(ctx context.Context, method string) (context.Context, error) {
	if openMethod(method) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var auth string
	if v := md.Get("authorization"); len(v) > 0 {
		auth = v[0]
	}
	p, err := k.lookup(auth)
	if err != nil {
		return ctx, status.Error(codes.Unauthenticated, err.Error())
	}
	if ok, wait := k.allow(p.Tenant); !ok {
		st := status.New(codes.ResourceExhausted, k.overLimit(p.Tenant, wait))
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); derr == nil {
			st = d
		}
		return ctx, st.Err()
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// UnaryInterceptor checks the key of every unary gRPC call (the Open
// Inference Protocol's calls are all for users).
func (k *Keys) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := k.grpcCheck(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor checks the key of every streaming gRPC call.
func (k *Keys) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if _, err := k.grpcCheck(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
