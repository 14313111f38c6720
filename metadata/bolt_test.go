package metadata_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/metadata/storetest"
)

func openBolt(t *testing.T, path string) *metadata.BoltStore {
	t.Helper()
	s, err := metadata.OpenBolt(path)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	return s
}

func TestBoltStore(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) metadata.Store {
			return openBolt(t, filepath.Join(t.TempDir(), "metadata.db"))
		},
		storetest.WithReopen(func(t *testing.T, closed metadata.Store) metadata.Store {
			return openBolt(t, closed.(*metadata.BoltStore).Path())
		}),
		// One process holds the file: a second "client" is the store itself.
		storetest.WithSecondClient(func(_ *testing.T, s metadata.Store) metadata.Store { return s }),
	)
}

func TestOpenBoltMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "metadata.db")
	s, err := metadata.OpenBolt(path)
	if err == nil {
		_ = s.Close()
		t.Fatal("OpenBolt in a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file", err)
	}
}

// TestBoltReopenExpiresLeases: only one process can open the file, so the
// leases found when opening it belong to a process that has exited.
func TestBoltReopenExpiresLeases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s := openBolt(t, path)
	arch := catalog.Architecture{Name: "lenet", Task: "classification", Dataset: "mnist", State: catalog.StatePending}
	if err := s.BeginRegistration(t.Context(), arch, "exited", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.Pending(t.Context()); err != nil || len(ps) != 1 || ps[0].Expired {
		t.Fatalf("Pending before closing = %+v, %v; want one live lease", ps, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBolt(t, path)
	defer s.Close()
	ps, err := s.Pending(t.Context())
	if err != nil || len(ps) != 1 || !ps[0].Expired || ps[0].Owner != "exited" {
		t.Fatalf("Pending after reopening = %+v, %v; want the lease of \"exited\", expired", ps, err)
	}
	if err := s.AbortRegistration(t.Context(), "lenet", "recovering"); err != nil {
		t.Fatalf("AbortRegistration by another owner after reopening: %v", err)
	}
}
