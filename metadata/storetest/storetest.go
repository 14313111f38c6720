package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

// Option configures Run.
type Option func(*config)

type config struct {
	reopen func(t *testing.T, closed metadata.Store) metadata.Store
	second func(t *testing.T, s metadata.Store) metadata.Store
}

// WithReopen adds the restart tests. reopen receives a store the suite has
// already closed and returns a new store over the same data, as a restarted
// process would open it; the suite closes the new one.
func WithReopen(reopen func(t *testing.T, closed metadata.Store) metadata.Store) Option {
	return func(c *config) { c.reopen = reopen }
}

// WithSecondClient lets the checks that involve two processes sharing a
// store use two handles on it. second returns another handle on s's data,
// as a second process would open it (RedisStore: another client with the
// same key prefix); a store only one process can hold returns s itself.
// The suite closes what second returns unless it is s. Without this option
// those checks use s for both.
func WithSecondClient(second func(t *testing.T, s metadata.Store) metadata.Store) Option {
	return func(c *config) { c.second = second }
}

// test is one conformance check, run on a fresh, empty store.
type test struct {
	name string
	run  func(t *testing.T, s metadata.Store)
}

// pairTest is a check of two handles a and b on one fresh, empty store, as
// two processes sharing it would hold them.
type pairTest struct {
	name string
	run  func(t *testing.T, a, b metadata.Store)
}

// The owners of leases in the suite, and the lease the helpers take: long
// enough never to expire during a test.
const (
	owner    = "controller-a"
	other    = "controller-b"
	leaseTTL = time.Hour
)

// Run checks the Store contract. newStore must return an empty store that
// does not share data with any other it returns; the suite closes it.
// Tests within a group run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) metadata.Store, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	groups := []struct {
		name  string
		tests []test
	}{
		{"BeginRegistration", beginTests},
		{"CommitRegistration", commitTests},
		{"AbortRegistration", abortTests},
		{"Queries", queryTests},
		{"DeleteArchitecture", deleteTests},
		{"Digests", digestTests},
		{"Leases", leaseTests},
		{"SetProfile", profileTests},
		{"BlobLock", blobLockTests},
		{"Changes", changesTests},
		{"Context", contextTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open(t, newStore))
				})
			}
		})
	}
	pairGroups := []struct {
		name  string
		tests []pairTest
	}{
		{"TwoClients", twoClientTests},
		{"Identity", identityTests},
	}
	for _, g := range pairGroups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					a := open(t, newStore)
					b := a
					if cfg.second != nil {
						b = cfg.second(t, a)
						if b != a {
							t.Cleanup(func() {
								if err := b.Close(); err != nil {
									t.Errorf("Close second client: %v", err)
								}
							})
						}
					}
					tc.run(t, a, b)
				})
			}
		})
	}
	t.Run("Close", func(t *testing.T) { testClose(t, newStore(t)) })
	if cfg.reopen != nil {
		t.Run("Reopen", func(t *testing.T) { testReopen(t, newStore(t), cfg.reopen) })
	}
}

// open returns a fresh store that is closed when t ends.
func open(t *testing.T, newStore func(t *testing.T) metadata.Store) metadata.Store {
	t.Helper()
	s := newStore(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// begin and register fail t unless the registration succeeds.
func begin(t *testing.T, s metadata.Store, arch catalog.Architecture) {
	t.Helper()
	if err := s.BeginRegistration(t.Context(), arch, owner, leaseTTL); err != nil {
		t.Fatalf("BeginRegistration(%s): %v", arch.Name, err)
	}
}

func commit(t *testing.T, s metadata.Store, arch catalog.Architecture, uc catalog.UseCase, variants []catalog.Variant) {
	t.Helper()
	if err := s.CommitRegistration(t.Context(), arch, owner, uc, variants); err != nil {
		t.Fatalf("CommitRegistration(%s): %v", arch.Name, err)
	}
}

// register begins and commits arch with its standard variants and returns
// the committed architecture and variants.
func register(t *testing.T, s metadata.Store, name, dataset string) (catalog.Architecture, []catalog.Variant) {
	t.Helper()
	begin(t, s, pendingArch(name, dataset))
	arch, vs := committedArch(name, dataset), variantsOf(name)
	commit(t, s, arch, useCase(dataset), vs)
	return arch, vs
}

// pendingArchs lists the pending architectures without their leases.
func pendingArchs(t *testing.T, s metadata.Store) []catalog.Architecture {
	t.Helper()
	ps := must[[]metadata.PendingRegistration](t, "Pending")(s.Pending(t.Context()))
	out := make([]catalog.Architecture, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Architecture)
	}
	return out
}

// pendingOf returns the listing entry of pending registration name.
func pendingOf(t *testing.T, s metadata.Store, name string) metadata.PendingRegistration {
	t.Helper()
	for _, p := range must[[]metadata.PendingRegistration](t, "Pending")(s.Pending(t.Context())) {
		if p.Architecture.Name == name {
			return p
		}
	}
	t.Fatalf("Pending does not list %s", name)
	return metadata.PendingRegistration{}
}

// waitTimeout bounds how long the suite waits for a condition that should
// hold almost at once (an expired lease, a delivered signal); reaching it
// is a failure, not a measurement.
const waitTimeout = 20 * time.Second

// eventually waits until cond holds, failing t if it does not within
// waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for !cond() {
		poll := time.NewTimer(time.Millisecond)
		select {
		case <-deadline.C:
			poll.Stop()
			t.Fatalf("still waiting for %s after %v", what, waitTimeout)
		case <-poll.C:
		}
	}
}

// beginExpired begins a registration of arch whose lease (1 ms) has
// expired by the store's clock when it returns.
func beginExpired(t *testing.T, s metadata.Store, arch catalog.Architecture, by string) {
	t.Helper()
	if err := s.BeginRegistration(t.Context(), arch, by, time.Millisecond); err != nil {
		t.Fatalf("BeginRegistration(%s): %v", arch.Name, err)
	}
	eventually(t, "the lease of "+arch.Name+" to expire", func() bool { return pendingOf(t, s, arch.Name).Expired })
}

// wantSignal waits for a value (not a close) on ch.
func wantSignal(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the Changes channel closed instead of signalling", what)
		}
	case <-deadline.C:
		t.Fatalf("%s: no signal on Changes after %v", what, waitTimeout)
	}
}

// wantClosed waits until ch is closed, discarding signals.
func wantClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline.C:
			t.Fatalf("%s: the Changes channel is still open after %v", what, waitTimeout)
		}
	}
}

// wantErr fails t unless err wraps want. A nil want means no error.
func wantErr(t *testing.T, call string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", call, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error %v, want one wrapping %q", call, err, want)
	}
}

// must returns v, failing t if err is not nil.
func must[T any](t *testing.T, call string) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		return v
	}
}

// equal fails t unless got and want are deeply equal.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// state is everything a store's listings show.
type state struct {
	Pending  []catalog.Architecture
	Ready    []catalog.Architecture
	Variants []catalog.Variant
	UseCases []catalog.UseCase
	Digests  map[string]struct{}
}

func snapshot(t *testing.T, s metadata.Store) state {
	t.Helper()
	ctx := t.Context()
	return state{
		Pending:  pendingArchs(t, s),
		Ready:    must[[]catalog.Architecture](t, "Architectures")(s.Architectures(ctx)),
		Variants: must[[]catalog.Variant](t, "AllVariants")(s.AllVariants(ctx)),
		UseCases: must[[]catalog.UseCase](t, "UseCases")(s.UseCases(ctx)),
		Digests:  must[map[string]struct{}](t, "Digests")(s.Digests(ctx)),
	}
}

// unchanged fails t if the store's listings differ from before.
func unchanged(t *testing.T, s metadata.Store, before state) {
	t.Helper()
	equal(t, "store after a failed call", snapshot(t, s), before)
}

// race runs fn(i) for i in [0, n) from n goroutines released together and
// returns their errors.
func race(ctx context.Context, n int, fn func(ctx context.Context, i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(ctx, i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// tally counts nil errors and errors wrapping want, and reports any other.
func tally(t *testing.T, errs []error, want error) (ok, wanted int) {
	t.Helper()
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, want):
			wanted++
		default:
			t.Errorf("caller %d: unexpected error %v", i, err)
		}
	}
	return ok, wanted
}

func testClose(t *testing.T, s metadata.Store) {
	begin(t, s, pendingArch("before-close", mnist))
	changes := must[<-chan struct{}](t, "Changes")(s.Changes(context.Background()))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Architecture(context.Background(), "before-close"); err == nil {
		t.Fatal("Architecture after Close succeeded; want an error")
	}
	wantClosed(t, "after Close", changes)
	if _, err := s.Changes(context.Background()); err == nil {
		t.Fatal("Changes after Close succeeded; want an error")
	}
}

func testReopen(t *testing.T, s metadata.Store, reopen func(*testing.T, metadata.Store) metadata.Store) {
	ready, vs := register(t, s, "lenet", mnist)
	register(t, s, "mlp", fashion)
	begin(t, s, pendingArch("half-done", mnist))
	wantErr(t, "AddPendingDigests(half-done)", s.AddPendingDigests(t.Context(), "half-done", owner, "sha256:half-done-graph"), nil)
	before := snapshot(t, s)
	beforeID := must[string](t, "Identity")(s.Identity(t.Context()))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t, s)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close reopened store: %v", err)
		}
	})
	ctx := t.Context()
	equal(t, "listings after reopening", snapshot(t, s), before)
	if id := must[string](t, "Identity")(s.Identity(ctx)); id != beforeID {
		t.Errorf("Identity after reopening = %q, want %q", id, beforeID)
	}
	equal(t, "Architecture(lenet) after reopening",
		must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "lenet")), wantArch(readyCopy(ready)))
	equal(t, "Variants(lenet) after reopening",
		must[[]catalog.Variant](t, "Variants")(s.Variants(ctx, "lenet")), wantVariants(vs))
	equal(t, fmt.Sprintf("UseCase(%s) after reopening", useCase(mnist).ID()),
		must[catalog.UseCase](t, "UseCase")(s.UseCase(ctx, useCase(mnist).ID())), useCase(mnist))
	// Whether the lease is still live depends on the store: a shared one
	// keeps it (its owner may be running elsewhere), a store only one
	// process can open expires it. The owner and digests are kept.
	if p := pendingOf(t, s, "half-done"); p.Owner != owner || !reflect.DeepEqual(p.Digests, []string{"sha256:half-done-graph"}) {
		t.Fatalf("lease of half-done after reopening: owner %q, digests %v; want %q, [sha256:half-done-graph]", p.Owner, p.Digests, owner)
	}

	// The reopened store is fully usable: recovery aborts the pending
	// registration and the name can be reused.
	wantErr(t, "AbortRegistration(half-done)", s.AbortRegistration(ctx, "half-done", owner), nil)
	wantErr(t, "DeleteArchitecture(lenet)", s.DeleteArchitecture(ctx, "lenet"), nil)
	register(t, s, "half-done", mnist)
}
