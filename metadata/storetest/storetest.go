package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

// Option configures Run.
type Option func(*config)

type config struct {
	reopen func(t *testing.T, closed metadata.Store) metadata.Store
}

// WithReopen adds the restart tests. reopen receives a store the suite has
// already closed and returns a new store over the same data, as a restarted
// process would open it; the suite closes the new one.
func WithReopen(reopen func(t *testing.T, closed metadata.Store) metadata.Store) Option {
	return func(c *config) { c.reopen = reopen }
}

// test is one conformance check, run on a fresh, empty store.
type test struct {
	name string
	run  func(t *testing.T, s metadata.Store)
}

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
	if err := s.BeginRegistration(t.Context(), arch); err != nil {
		t.Fatalf("BeginRegistration(%s): %v", arch.Name, err)
	}
}

func commit(t *testing.T, s metadata.Store, arch catalog.Architecture, uc catalog.UseCase, variants []catalog.Variant) {
	t.Helper()
	if err := s.CommitRegistration(t.Context(), arch, uc, variants); err != nil {
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
		Pending:  must[[]catalog.Architecture](t, "Pending")(s.Pending(ctx)),
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
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Architecture(context.Background(), "before-close"); err == nil {
		t.Fatal("Architecture after Close succeeded; want an error")
	}
}

func testReopen(t *testing.T, s metadata.Store, reopen func(*testing.T, metadata.Store) metadata.Store) {
	ready, vs := register(t, s, "lenet", mnist)
	register(t, s, "mlp", fashion)
	begin(t, s, pendingArch("half-done", mnist))
	before := snapshot(t, s)
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
	equal(t, "Architecture(lenet) after reopening",
		must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "lenet")), wantArch(readyCopy(ready)))
	equal(t, "Variants(lenet) after reopening",
		must[[]catalog.Variant](t, "Variants")(s.Variants(ctx, "lenet")), wantVariants(vs))
	equal(t, fmt.Sprintf("UseCase(%s) after reopening", useCase(mnist).ID()),
		must[catalog.UseCase](t, "UseCase")(s.UseCase(ctx, useCase(mnist).ID())), useCase(mnist))

	// The reopened store is fully usable: recovery aborts the pending
	// registration and the name can be reused.
	wantErr(t, "AbortRegistration(half-done)", s.AbortRegistration(ctx, "half-done"), nil)
	wantErr(t, "DeleteArchitecture(lenet)", s.DeleteArchitecture(ctx, "lenet"), nil)
	register(t, s, "half-done", mnist)
}
