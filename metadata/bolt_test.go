package metadata_test

import (
	"path/filepath"
	"strings"
	"testing"

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
