package registrar

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

// manualTicks makes r renew leases only when the test sends on the
// returned channel. A send returns once the renewer has taken the tick; the
// next send returns only after that renewal has finished.
func manualTicks(r *Registrar) chan time.Time {
	ticks := make(chan time.Time)
	r.renewTicks = func() (<-chan time.Time, func()) { return ticks, func() {} }
	return ticks
}

func TestKeepLeaseRenewsUntilTheRegistrationIsGone(t *testing.T) {
	ctx := t.Context()
	store, err := metadata.OpenBolt(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r := New(Config{Owner: "me", LeaseTTL: time.Hour}, store, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ticks := manualTicks(r)
	arch := catalog.Architecture{Name: "lenet", Task: "classification", Dataset: "mnist", State: catalog.StatePending}
	if err := store.BeginRegistration(ctx, arch, "me", time.Minute); err != nil {
		t.Fatal(err)
	}
	leaseUntil := func() time.Time {
		ps, err := store.Pending(ctx)
		if err != nil || len(ps) != 1 {
			t.Fatalf("Pending = %v, %v", ps, err)
		}
		return ps[0].LeaseUntil
	}
	first := leaseUntil()

	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := r.keepLease(jctx, "lenet", cancel)
	defer stop()
	ticks <- time.Now()
	ticks <- time.Now() // taken only once the first renewal is done
	if got := leaseUntil(); got.Sub(first) < 30*time.Minute {
		t.Fatalf("lease until %v after renewing for %v; it was %v", got, r.cfg.LeaseTTL, first)
	}
	if jctx.Err() != nil {
		t.Fatalf("job canceled while its lease is held: %v", context.Cause(jctx))
	}

	// Another process aborted it (as it may once the lease expired).
	if err := store.AbortRegistration(ctx, "lenet", "me"); err != nil {
		t.Fatal(err)
	}
	// The renewal the second tick started may already have found it gone.
	select {
	case ticks <- time.Now():
	case <-jctx.Done():
	}
	<-jctx.Done()
	if cause := context.Cause(jctx); !errors.Is(cause, errLeaseLost) || !errors.Is(cause, metadata.ErrNotFound) {
		t.Fatalf("job canceled with %v; want the lost lease", cause)
	}
}

func TestKeepLeaseStopsWhenAsked(t *testing.T) {
	store, err := metadata.OpenBolt(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r := New(Config{Owner: "me"}, store, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	manualTicks(r)
	jctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	stop := r.keepLease(jctx, "lenet", cancel)
	stop()
	stop() // twice is fine
	if jctx.Err() != nil {
		t.Fatalf("stopping the renewer canceled the job: %v", context.Cause(jctx))
	}
}

func TestNewFillsDefaults(t *testing.T) {
	a := New(Config{}, nil, nil, nil, slog.Default())
	b := New(Config{}, nil, nil, nil, slog.Default())
	if a.Owner() == "" || a.Owner() == b.Owner() {
		t.Fatalf("owners %q and %q; want two distinct non-empty IDs", a.Owner(), b.Owner())
	}
	if a.cfg.LeaseTTL != DefaultLeaseTTL || a.cfg.RenewEvery != DefaultLeaseTTL/3 {
		t.Fatalf("lease %v renewed every %v; want %v every %v", a.cfg.LeaseTTL, a.cfg.RenewEvery, DefaultLeaseTTL, DefaultLeaseTTL/3)
	}
	if c := New(Config{Owner: "stable", LeaseTTL: time.Minute, RenewEvery: time.Second}, nil, nil, nil, slog.Default()); c.Owner() != "stable" || c.cfg.RenewEvery != time.Second {
		t.Fatalf("explicit settings not kept: %+v", c.cfg)
	}
	if d := DefaultConfig(); d.LeaseTTL != 30*time.Second || d.RenewEvery != 10*time.Second {
		t.Fatalf("DefaultConfig lease %v every %v; want 30s every 10s", d.LeaseTTL, d.RenewEvery)
	}
}
