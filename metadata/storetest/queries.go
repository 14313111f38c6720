package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

var queryTests = []test{
	{"empty store", func(t *testing.T, s metadata.Store) {
		equal(t, "listings of an empty store", snapshot(t, s), state{
			Pending:  []catalog.Architecture{},
			Ready:    []catalog.Architecture{},
			Variants: []catalog.Variant{},
			UseCases: []catalog.UseCase{},
			Digests:  map[string]struct{}{},
		})
	}},
	{"unknown names", func(t *testing.T, s metadata.Store) {
		register(t, s, "lenet", mnist)
		ctx := t.Context()
		for _, tc := range []struct {
			call string
			err  func() error
		}{
			{"Architecture", func() error { _, err := s.Architecture(ctx, "ghost"); return err }},
			{"Variants", func() error { _, err := s.Variants(ctx, "ghost"); return err }},
			{"Variant", func() error { _, err := s.Variant(ctx, "ghost.fp32.basic.t1.b1.cpu"); return err }},
			{"UseCase", func() error { _, err := s.UseCase(ctx, catalog.UseCaseID(task, "ghost")); return err }},
			{"UseCase by dataset alone", func() error { _, err := s.UseCase(ctx, mnist); return err }},
		} {
			t.Run(tc.call, func(t *testing.T) { wantErr(t, tc.call, tc.err(), metadata.ErrNotFound) })
		}
	}},
	{"listings are sorted and separate states", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		zeta, zetaVs := register(t, s, "zeta", mnist)
		alpha, alphaVs := register(t, s, "alpha", fashion)
		mid, midVs := register(t, s, "mid", mnist)
		begin(t, s, pendingArch("pending-b", mnist))
		begin(t, s, pendingArch("pending-a", fashion))

		equal(t, "Architectures", must[[]catalog.Architecture](t, "Architectures")(s.Architectures(ctx)),
			wantArchs(readyCopy(zeta), readyCopy(alpha), readyCopy(mid)))
		equal(t, "Pending", pendingArchs(t, s),
			wantArchs(pendingArch("pending-a", fashion), pendingArch("pending-b", mnist)))
		equal(t, "AllVariants", must[[]catalog.Variant](t, "AllVariants")(s.AllVariants(ctx)),
			wantVariants(zetaVs, alphaVs, midVs))
		equal(t, "Variants(mid)", must[[]catalog.Variant](t, "Variants")(s.Variants(ctx, "mid")), wantVariants(midVs))
		equal(t, "UseCases", must[[]catalog.UseCase](t, "UseCases")(s.UseCases(ctx)),
			[]catalog.UseCase{useCase(fashion), useCase(mnist)})
		equal(t, "Architecture(pending-a)", must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "pending-a")),
			wantArch(pendingArch("pending-a", fashion)))
	}},
	{"returned values are copies", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		_, vs := register(t, s, "lenet", mnist)
		got := must[catalog.Variant](t, "Variant")(s.Variant(ctx, vs[0].Name))
		got.Profile.LatencyMs[1] = catalog.Latency{P99: 1e9}
		got.Architecture = "mutated"
		arch := must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "lenet"))
		arch.Dropped[0].Reason = "mutated"
		arch.Inputs[0].Shape[0] = 99
		equal(t, "Variant after mutating a result", must[catalog.Variant](t, "Variant")(s.Variant(ctx, vs[0].Name)), wantVariant(vs[0]))
		equal(t, "Architecture after mutating a result", must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "lenet")),
			wantArch(readyCopy(committedArch("lenet", mnist))))
	}},
}

var deleteTests = []test{
	{"removes the architecture and its variants", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		_, lenetVs := register(t, s, "lenet", mnist)
		mlp, mlpVs := register(t, s, "mlp", mnist)
		wantErr(t, "DeleteArchitecture", s.DeleteArchitecture(ctx, "lenet"), nil)

		_, err := s.Architecture(ctx, "lenet")
		wantErr(t, "Architecture", err, metadata.ErrNotFound)
		_, err = s.Variants(ctx, "lenet")
		wantErr(t, "Variants", err, metadata.ErrNotFound)
		for _, v := range lenetVs {
			_, err := s.Variant(ctx, v.Name)
			wantErr(t, "Variant "+v.Name, err, metadata.ErrNotFound)
		}
		equal(t, "listings", snapshot(t, s), state{
			Pending:  []catalog.Architecture{},
			Ready:    wantArchs(readyCopy(mlp)),
			Variants: wantVariants(mlpVs),
			UseCases: []catalog.UseCase{useCase(mnist)},
			Digests:  digestsOf([]catalog.Architecture{mlp}, mlpVs),
		})
		register(t, s, "lenet", mnist) // the name and the variant names are free again
	}},
	{"the use case goes with its last architecture", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		register(t, s, "lenet", mnist)
		register(t, s, "mlp", mnist)
		register(t, s, "resnet", fashion)
		id := useCase(mnist).ID()

		wantErr(t, "DeleteArchitecture(lenet)", s.DeleteArchitecture(ctx, "lenet"), nil)
		equal(t, "UseCase while mlp remains", must[catalog.UseCase](t, "UseCase")(s.UseCase(ctx, id)), useCase(mnist))

		wantErr(t, "DeleteArchitecture(mlp)", s.DeleteArchitecture(ctx, "mlp"), nil)
		_, err := s.UseCase(ctx, id)
		wantErr(t, "UseCase after its last architecture", err, metadata.ErrNotFound)
		equal(t, "UseCases", must[[]catalog.UseCase](t, "UseCases")(s.UseCases(ctx)), []catalog.UseCase{useCase(fashion)})

		// A new architecture may now define the use case afresh.
		begin(t, s, pendingArch("wide", mnist))
		uc := useCase(mnist)
		uc.Inputs[0].Shape = []int64{-1, 784}
		commit(t, s, committedArch("wide", mnist), uc, variantsOf("wide"))
		equal(t, "UseCase redefined", must[catalog.UseCase](t, "UseCase")(s.UseCase(ctx, id)), uc)
	}},
	{"a pending architecture does not keep the use case", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		register(t, s, "lenet", mnist)
		begin(t, s, pendingArch("mlp", mnist))
		wantErr(t, "DeleteArchitecture", s.DeleteArchitecture(ctx, "lenet"), nil)
		_, err := s.UseCase(ctx, useCase(mnist).ID())
		wantErr(t, "UseCase", err, metadata.ErrNotFound)
		commit(t, s, committedArch("mlp", mnist), useCase(mnist), variantsOf("mlp"))
		equal(t, "UseCase recreated by the pending one's commit", must[catalog.UseCase](t, "UseCase")(s.UseCase(ctx, useCase(mnist).ID())), useCase(mnist))
	}},
	{"unknown name", func(t *testing.T, s metadata.Store) {
		register(t, s, "lenet", mnist)
		before := snapshot(t, s)
		wantErr(t, "DeleteArchitecture", s.DeleteArchitecture(t.Context(), "ghost"), metadata.ErrNotFound)
		unchanged(t, s, before)
	}},
	{"refuses a pending architecture", func(t *testing.T, s metadata.Store) {
		begin(t, s, pendingArch("lenet", mnist))
		before := snapshot(t, s)
		wantErr(t, "DeleteArchitecture", s.DeleteArchitecture(t.Context(), "lenet"), metadata.ErrConflict)
		unchanged(t, s, before)
	}},
	{"concurrent deletes of one architecture: exactly one wins", func(t *testing.T, s metadata.Store) {
		for round := range raceRounds {
			name := fmt.Sprintf("arch-%d", round)
			register(t, s, name, mnist)
			errs := race(t.Context(), racers, func(ctx context.Context, _ int) error { return s.DeleteArchitecture(ctx, name) })
			if ok, missing := tally(t, errs, metadata.ErrNotFound); ok != 1 || missing != racers-1 {
				t.Fatalf("round %d: %d succeeded and %d got ErrNotFound; want 1 and %d", round, ok, missing, racers-1)
			}
			equal(t, "listings", snapshot(t, s), state{
				Pending:  []catalog.Architecture{},
				Ready:    []catalog.Architecture{},
				Variants: []catalog.Variant{},
				UseCases: []catalog.UseCase{},
				Digests:  map[string]struct{}{},
			})
		}
	}},
}

var digestTests = []test{
	{"pending and ready architectures and their variants", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		lenet, lenetVs := register(t, s, "lenet", mnist)
		half := pendingArch("half-done", fashion)
		begin(t, s, half)
		equal(t, "Digests", must[map[string]struct{}](t, "Digests")(s.Digests(ctx)),
			digestsOf([]catalog.Architecture{lenet, half}, lenetVs))

		wantErr(t, "AbortRegistration", s.AbortRegistration(ctx, "half-done", owner), nil)
		wantErr(t, "DeleteArchitecture", s.DeleteArchitecture(ctx, "lenet"), nil)
		equal(t, "Digests after abort and delete", must[map[string]struct{}](t, "Digests")(s.Digests(ctx)), map[string]struct{}{})
	}},
	{"shared digests and missing ones", func(t *testing.T, s metadata.Store) {
		// Identical files (a variant that is the uploaded model itself)
		// appear once; an empty digest (not uploaded yet) is not a digest.
		arch := pendingArch("lenet", mnist)
		arch.ModelDigest = ""
		begin(t, s, arch)
		committed := committedArch("lenet", mnist)
		vs := variantsOf("lenet")
		vs[0].FileDigest = committed.ModelDigest
		commit(t, s, committed, useCase(mnist), vs)
		equal(t, "Digests", must[map[string]struct{}](t, "Digests")(s.Digests(t.Context())),
			digestsOf([]catalog.Architecture{committed}, vs))
		arch.Name = "other"
		begin(t, s, arch)
		equal(t, "Digests with an empty one", must[map[string]struct{}](t, "Digests")(s.Digests(t.Context())),
			digestsOf([]catalog.Architecture{committed}, vs))
	}},
}

var contextTests = []test{
	{"a canceled context fails every call", func(t *testing.T, s metadata.Store) {
		register(t, s, "lenet", mnist)
		begin(t, s, pendingArch("half-done", mnist))
		before := snapshot(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for _, tc := range []struct {
			call string
			err  func() error
		}{
			{"BeginRegistration", func() error { return s.BeginRegistration(ctx, pendingArch("new", mnist), owner, leaseTTL) }},
			{"CommitRegistration", func() error {
				return s.CommitRegistration(ctx, committedArch("half-done", mnist), owner, useCase(mnist), variantsOf("half-done"))
			}},
			{"AbortRegistration", func() error { return s.AbortRegistration(ctx, "half-done", owner) }},
			{"Pending", func() error { _, err := s.Pending(ctx); return err }},
			{"Architecture", func() error { _, err := s.Architecture(ctx, "lenet"); return err }},
			{"Architectures", func() error { _, err := s.Architectures(ctx); return err }},
			{"Variants", func() error { _, err := s.Variants(ctx, "lenet"); return err }},
			{"Variant", func() error { _, err := s.Variant(ctx, variantsOf("lenet")[0].Name); return err }},
			{"AllVariants", func() error { _, err := s.AllVariants(ctx); return err }},
			{"UseCase", func() error { _, err := s.UseCase(ctx, useCase(mnist).ID()); return err }},
			{"UseCases", func() error { _, err := s.UseCases(ctx); return err }},
			{"DeleteArchitecture", func() error { return s.DeleteArchitecture(ctx, "lenet") }},
			{"Digests", func() error { _, err := s.Digests(ctx); return err }},
			{"RenewLease", func() error { return s.RenewLease(ctx, "half-done", owner, leaseTTL) }},
			{"AddPendingDigests", func() error { return s.AddPendingDigests(ctx, "half-done", owner, "sha256:more") }},
			{"SetProfile", func() error {
				return s.SetProfile(ctx, variantsOf("lenet")[0].Name, "gpu", variantsOf("lenet")[0].Profile)
			}},
			{"LockBlobs", func() error {
				_, release, err := s.LockBlobs(ctx)
				if err == nil {
					release()
				}
				return err
			}},
			{"Changes", func() error { _, err := s.Changes(ctx); return err }},
		} {
			t.Run(tc.call, func(t *testing.T) { wantErr(t, tc.call, tc.err(), context.Canceled) })
		}
		unchanged(t, s, before)
	}},
}
