package metadata_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

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
	if err := a.BeginRegistration(ctx, arch); err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	for name, s := range map[string]*metadata.RedisStore{"other prefix": b, "other database": other} {
		if _, err := s.Architecture(ctx, "lenet"); !errors.Is(err, metadata.ErrNotFound) {
			t.Errorf("%s: Architecture = %v; want ErrNotFound", name, err)
		}
		if err := s.BeginRegistration(ctx, arch); err != nil {
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
