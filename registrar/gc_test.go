package registrar

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/repository"
)

// TestCollectorWaitsOutTheGracePeriod: a blob goes only once it has been
// unreferenced for GCGrace as the collector saw it; a blob referenced
// again meanwhile starts a fresh clock when it turns unreferenced again,
// and a referenced blob is never deleted.
func TestCollectorWaitsOutTheGracePeriod(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	store, err := metadata.OpenBolt(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	repo, err := repository.Open(ctx, filepath.Join(dir, "models"))
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	r := New(Config{Owner: "me", LeaseTTL: time.Hour, GCGrace: time.Hour}, store, repo, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	now := t0
	r.now = func() time.Time { return now }
	put := func(content string) string {
		d, err := repo.Put(ctx, []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	reference := func(name, d string) {
		arch := catalog.Architecture{Name: name, Task: "classification", Dataset: "mnist", State: catalog.StatePending, ModelDigest: d}
		if err := store.BeginRegistration(ctx, arch, "me", 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	unreference := func(name string) {
		if err := store.AbortRegistration(ctx, name, "me"); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(at time.Duration, want ...string) {
		t.Helper()
		now = t0.Add(at)
		if _, err := r.collectGarbage(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := repo.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("at +%s the repository holds %v, want %v", at, got, want)
		}
	}

	a, b := put("orphan"), put("in use")
	reference("b", b)
	collect(0, a, b) // a found unreferenced now
	if r.collectionDue() {
		t.Fatal("a collection is due at once with a one-hour grace")
	}
	collect(59*time.Minute, a, b)
	unreference("b") // b found unreferenced at +61 min
	now = t0.Add(time.Hour)
	if !r.collectionDue() {
		t.Fatal("no collection due once a's grace period ended")
	}
	collect(61*time.Minute, b)

	// c: unreferenced, then referenced again before its grace ends, then
	// unreferenced again: its clock starts afresh.
	c := put("back in use")
	collect(62*time.Minute, b, c)
	reference("c", c)
	collect(90*time.Minute, b, c)
	unreference("c")
	collect(2*time.Hour+time.Minute, c) // b due at +2 h 1 min; c's clock starts now
	collect(2*time.Hour+30*time.Minute, c)
	collect(3*time.Hour + time.Minute)
	if len(r.unreferenced) != 0 {
		t.Fatalf("the collector still tracks %v", r.unreferenced)
	}
}

// TestSweepEvery: a short grace period makes Run sweep often enough to
// delete within half of it; a long one leaves the lease period.
func TestSweepEvery(t *testing.T) {
	for _, tc := range []struct{ lease, grace, want time.Duration }{
		{30 * time.Second, 10 * time.Minute, 30 * time.Second},
		{30 * time.Second, 4 * time.Second, 2 * time.Second},
		{30 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, time.Millisecond, 100 * time.Millisecond},
	} {
		r := New(Config{LeaseTTL: tc.lease, GCGrace: tc.grace}, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if got := r.sweepEvery(); got != tc.want {
			t.Errorf("lease %s, grace %s: sweep every %s, want %s", tc.lease, tc.grace, got, tc.want)
		}
	}
}
