package metadata_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/internal/testredis"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/metadata/storetest"
)

func openRedis(t *testing.T, url, prefix string) *metadata.RedisStore {
	t.Helper()
	s, err := metadata.OpenRedis(t.Context(), url, metadata.WithKeyPrefix(prefix))
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	return s
}

// TestRedisStore runs the suite against one real redis-server; every store
// gets its own key prefix, so parallel tests do not see each other.
func TestRedisStore(t *testing.T) {
	url := "redis://" + testredis.Start(t) + "/0"
	var n atomic.Int64
	storetest.Run(t,
		func(t *testing.T) metadata.Store {
			return openRedis(t, url, fmt.Sprintf("test-%d:", n.Add(1)))
		},
		storetest.WithReopen(func(t *testing.T, closed metadata.Store) metadata.Store {
			return openRedis(t, url, closed.(*metadata.RedisStore).Prefix())
		}),
		storetest.WithSecondClient(func(t *testing.T, s metadata.Store) metadata.Store {
			return openRedis(t, url, s.(*metadata.RedisStore).Prefix())
		}),
	)
}

func TestRedisKeyPrefixIsolates(t *testing.T) {
	addr := testredis.Start(t)
	ctx := t.Context()
	a := openRedis(t, "redis://"+addr+"/0", "a:")
	defer a.Close()
	b := openRedis(t, "redis://"+addr+"/0", "b:")
	defer b.Close()
	other := openRedis(t, "redis://"+addr+"/1", "a:")
	defer other.Close()

	arch := catalog.Architecture{Name: "lenet", Task: "classification", Dataset: "mnist", State: catalog.StatePending}
	if err := a.BeginRegistration(ctx, arch, "owner", time.Minute); err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	for name, s := range map[string]*metadata.RedisStore{"other prefix": b, "other database": other} {
		if _, err := s.Architecture(ctx, "lenet"); !errors.Is(err, metadata.ErrNotFound) {
			t.Errorf("%s: Architecture = %v; want ErrNotFound", name, err)
		}
		if err := s.BeginRegistration(ctx, arch, "owner", time.Minute); err != nil {
			t.Errorf("%s: BeginRegistration of the same name: %v", name, err)
		}
	}

	def, err := metadata.OpenRedis(ctx, "redis://"+addr+"/0")
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	defer def.Close()
	if got := def.Prefix(); got != metadata.DefaultKeyPrefix {
		t.Fatalf("default prefix %q; want %q", got, metadata.DefaultKeyPrefix)
	}
}

func TestOpenRedisErrors(t *testing.T) {
	// A port nobody listens on: take one and give it back.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		name, url string
		want      []string // substrings of the error
	}{
		{"not a URL", "127.0.0.1:6379", []string{"open metadata store"}},
		{"wrong scheme", "http://127.0.0.1:6379/0", []string{"open metadata store", "scheme"}},
		{"nobody listening", "redis://" + closedAddr + "/0", []string{closedAddr, "reachable"}},
		{"password is not shown", "redis://user:s3cret@" + closedAddr + "/0", []string{"xxxxx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each unreachable case spends seconds in go-redis's dial retries
			s, err := metadata.OpenRedis(t.Context(), tc.url)
			if err == nil {
				_ = s.Close()
				t.Fatal("OpenRedis succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// shutDown stops the redis-server at addr (SHUTDOWN NOSAVE) and waits until
// nothing accepts connections there.
func shutDown(t *testing.T, addr string) {
	t.Helper()
	raw := redis.NewClient(&redis.Options{Addr: addr})
	defer raw.Close()
	_ = raw.ShutdownNoSave(t.Context()).Err() // the server hangs up instead of answering
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		poll := time.NewTimer(10 * time.Millisecond)
		select {
		case <-deadline.C:
			t.Fatalf("redis-server at %s still accepts connections after SHUTDOWN", addr)
		case <-poll.C:
		}
	}
}

// TestRedisUnavailable checks that every method reports a server it cannot
// reach as ErrUnavailable, keeping go-redis's own words.
func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	addr := testredis.Start(t)
	ctx := t.Context()
	// No retries, so that each call fails at once.
	s := openRedis(t, "redis://"+addr+"/0?max_retries=-1", "down:")
	t.Cleanup(func() { s.Close() })
	arch := catalog.Architecture{Name: "lenet", Task: "classification", Dataset: "mnist", State: catalog.StatePending}
	if err := s.BeginRegistration(ctx, arch, "owner", time.Minute); err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	shutDown(t, addr)

	for _, tc := range []struct {
		call string
		err  func() error
	}{
		{"BeginRegistration", func() error {
			a := arch
			a.Name = "other"
			return s.BeginRegistration(ctx, a, "owner", time.Minute)
		}},
		{"RenewLease", func() error { return s.RenewLease(ctx, "lenet", "owner", time.Minute) }},
		{"AddPendingDigests", func() error { return s.AddPendingDigests(ctx, "lenet", "owner", "sha256:x") }},
		{"CommitRegistration", func() error {
			uc := catalog.UseCase{Task: "classification", Dataset: "mnist"}
			return s.CommitRegistration(ctx, arch, "owner", uc, nil)
		}},
		{"AbortRegistration", func() error { return s.AbortRegistration(ctx, "lenet", "owner") }},
		{"Pending", func() error { _, err := s.Pending(ctx); return err }},
		{"Architecture", func() error { _, err := s.Architecture(ctx, "lenet"); return err }},
		{"Architectures", func() error { _, err := s.Architectures(ctx); return err }},
		{"Variants", func() error { _, err := s.Variants(ctx, "lenet"); return err }},
		{"Variant", func() error { _, err := s.Variant(ctx, "lenet.fp32.all.t1.b1.cpu"); return err }},
		{"AllVariants", func() error { _, err := s.AllVariants(ctx); return err }},
		{"UseCase", func() error { _, err := s.UseCase(ctx, "classification/mnist"); return err }},
		{"UseCases", func() error { _, err := s.UseCases(ctx); return err }},
		{"SetProfile", func() error { return s.SetProfile(ctx, "lenet.fp32.all.t1.b1.cpu", "gpu", catalog.Profile{}) }},
		{"DeleteArchitecture", func() error { return s.DeleteArchitecture(ctx, "lenet") }},
		{"Digests", func() error { _, err := s.Digests(ctx); return err }},
		{"LockBlobs", func() error { _, _, err := s.LockBlobs(ctx); return err }},
		{"Changes", func() error { _, err := s.Changes(ctx); return err }},
	} {
		t.Run(tc.call, func(t *testing.T) {
			t.Parallel() // each call spends a dial timeout
			err := tc.err()
			if !errors.Is(err, metadata.ErrUnavailable) {
				t.Fatalf("%s with the server down: %v; want ErrUnavailable", tc.call, err)
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q does not keep go-redis's message naming the address", err)
			}
			if errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrConflict) {
				t.Errorf("error %q also claims a definite answer", err)
			}
		})
	}
}

// TestRedisUnavailableWithRetries checks the default client, which retries
// before giving up, ends in ErrUnavailable too.
func TestRedisUnavailableWithRetries(t *testing.T) {
	t.Parallel()
	addr := testredis.Start(t)
	s := openRedis(t, "redis://"+addr+"/0", "down:")
	defer s.Close()
	shutDown(t, addr)
	if _, err := s.Architecture(t.Context(), "lenet"); !errors.Is(err, metadata.ErrUnavailable) {
		t.Fatalf("Architecture with the server down: %v; want ErrUnavailable", err)
	}
}

// TestRedisChangesAfterReconnect checks that a subscriber whose connection
// was dropped resubscribes and signals, since it may have missed a change.
func TestRedisChangesAfterReconnect(t *testing.T) {
	addr := testredis.Start(t)
	s := openRedis(t, "redis://"+addr+"/0", "reconnect:")
	defer s.Close()
	changes, err := s.Changes(t.Context())
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	raw := redis.NewClient(&redis.Options{Addr: addr})
	defer raw.Close()
	if n, err := raw.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Result(); err != nil || n != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v; want 1 connection killed", n, err)
	}
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	select {
	case _, ok := <-changes:
		if !ok {
			t.Fatal("Changes closed after its connection was killed")
		}
	case <-deadline.C:
		t.Fatal("no signal after the subscription's connection was killed")
	}
	// And it is subscribed again: a change through another client arrives.
	other := openRedis(t, "redis://"+addr+"/0", "reconnect:")
	defer other.Close()
	arch := catalog.Architecture{Name: "lenet", Task: "classification", Dataset: "mnist", State: catalog.StatePending}
	if err := other.BeginRegistration(t.Context(), arch, "owner", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := other.AbortRegistration(t.Context(), "lenet", "owner"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-deadline.C:
		t.Fatal("no signal for an abort after resubscribing")
	}
}
