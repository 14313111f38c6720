package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

// racers is how many goroutines contend in each race; a lost update is a
// narrow window, so each race is repeated (rounds), and the first round may
// mostly measure connection set-up.
const (
	racers           = 16
	raceRounds       = 20
	commitRaceRounds = 5
)

var beginTests = []test{
	{"records a pending architecture", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		arch := pendingArch("lenet", mnist)
		begin(t, s, arch)
		equal(t, "Architecture", must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "lenet")), wantArch(arch))
		equal(t, "Pending", pendingArchs(t, s), wantArchs(arch))
		equal(t, "Variants of a pending architecture", must[[]catalog.Variant](t, "Variants")(s.Variants(ctx, "lenet")), []catalog.Variant{})
		equal(t, "listings hide pending architectures", snapshot(t, s), state{
			Pending:  wantArchs(arch),
			Ready:    []catalog.Architecture{},
			Variants: []catalog.Variant{},
			UseCases: []catalog.UseCase{},
			Digests:  digestsOf([]catalog.Architecture{arch}),
		})
	}},
	{"name taken by a pending architecture", func(t *testing.T, s metadata.Store) {
		begin(t, s, pendingArch("lenet", mnist))
		before := snapshot(t, s)
		wantErr(t, "BeginRegistration again", s.BeginRegistration(t.Context(), pendingArch("lenet", fashion), owner, leaseTTL), metadata.ErrExists)
		unchanged(t, s, before)
	}},
	{"name taken by a ready architecture", func(t *testing.T, s metadata.Store) {
		register(t, s, "lenet", mnist)
		before := snapshot(t, s)
		wantErr(t, "BeginRegistration again", s.BeginRegistration(t.Context(), pendingArch("lenet", mnist), owner, leaseTTL), metadata.ErrExists)
		unchanged(t, s, before)
	}},
	{"rejects invalid architectures and leases", func(t *testing.T, s metadata.Store) {
		for _, tc := range []struct {
			name  string
			edit  func(a *catalog.Architecture)
			owner string
			ttl   time.Duration
		}{
			{"state ready", func(a *catalog.Architecture) { a.State = catalog.StateReady }, owner, leaseTTL},
			{"no state", func(a *catalog.Architecture) { a.State = "" }, owner, leaseTTL},
			{"empty name", func(a *catalog.Architecture) { a.Name = "" }, owner, leaseTTL},
			{"no owner", func(*catalog.Architecture) {}, "", leaseTTL},
			{"zero lease", func(*catalog.Architecture) {}, owner, 0},
			{"negative lease", func(*catalog.Architecture) {}, owner, -time.Second},
		} {
			t.Run(tc.name, func(t *testing.T) {
				arch := pendingArch("lenet", mnist)
				tc.edit(&arch)
				before := snapshot(t, s)
				wantErr(t, "BeginRegistration", s.BeginRegistration(t.Context(), arch, tc.owner, tc.ttl), metadata.ErrInvalid)
				unchanged(t, s, before)
			})
		}
	}},
	{"concurrent callers of one name: exactly one wins", func(t *testing.T, s metadata.Store) {
		for round := range raceRounds {
			name := fmt.Sprintf("contended-%d", round)
			errs := race(t.Context(), racers, func(ctx context.Context, i int) error {
				a := pendingArch(name, mnist)
				a.ModelDigest = fmt.Sprintf("sha256:racer-%d", i)
				return s.BeginRegistration(ctx, a, owner, leaseTTL)
			})
			if ok, exists := tally(t, errs, metadata.ErrExists); ok != 1 || exists != racers-1 {
				t.Fatalf("round %d: %d succeeded and %d got ErrExists; want 1 and %d", round, ok, exists, racers-1)
			}
			winner := -1
			for i, err := range errs {
				if err == nil {
					winner = i
				}
			}
			got := must[catalog.Architecture](t, "Architecture")(s.Architecture(t.Context(), name))
			if want := fmt.Sprintf("sha256:racer-%d", winner); got.ModelDigest != want {
				t.Fatalf("round %d: stored registration has digest %s; the winner wrote %s", round, got.ModelDigest, want)
			}
		}
	}},
}

var commitTests = []test{
	{"round trip of every field", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		arch, vs := register(t, s, "lenet", mnist)
		equal(t, "Architecture", must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "lenet")), wantArch(readyCopy(arch)))
		equal(t, "Variants", must[[]catalog.Variant](t, "Variants")(s.Variants(ctx, "lenet")), wantVariants(vs))
		for _, v := range vs {
			equal(t, "Variant "+v.Name, must[catalog.Variant](t, "Variant")(s.Variant(ctx, v.Name)), wantVariant(v))
		}
		equal(t, "UseCase", must[catalog.UseCase](t, "UseCase")(s.UseCase(ctx, useCase(mnist).ID())), useCase(mnist))
		equal(t, "listings", snapshot(t, s), state{
			Pending:  []catalog.Architecture{},
			Ready:    wantArchs(readyCopy(arch)),
			Variants: wantVariants(vs),
			UseCases: []catalog.UseCase{useCase(mnist)},
			Digests:  digestsOf([]catalog.Architecture{arch}, vs),
		})
	}},
	{"the committed architecture replaces the pending one", func(t *testing.T, s metadata.Store) {
		begin(t, s, pendingArch("lenet", mnist))
		arch := committedArch("lenet", mnist)
		arch.ModelDigest = "sha256:converted"
		commit(t, s, arch, useCase(mnist), variantsOf("lenet"))
		equal(t, "Architecture", must[catalog.Architecture](t, "Architecture")(s.Architecture(t.Context(), "lenet")), wantArch(readyCopy(arch)))
		equal(t, "Digests", must[map[string]struct{}](t, "Digests")(s.Digests(t.Context())), digestsOf([]catalog.Architecture{arch}, variantsOf("lenet")))
	}},
	{"without variants", func(t *testing.T, s metadata.Store) {
		begin(t, s, pendingArch("lenet", mnist))
		commit(t, s, committedArch("lenet", mnist), useCase(mnist), nil)
		equal(t, "Variants", must[[]catalog.Variant](t, "Variants")(s.Variants(t.Context(), "lenet")), []catalog.Variant{})
		equal(t, "Architectures", must[[]catalog.Architecture](t, "Architectures")(s.Architectures(t.Context())), wantArchs(readyCopy(committedArch("lenet", mnist))))
	}},
	{"no pending registration", func(t *testing.T, s metadata.Store) {
		before := snapshot(t, s)
		err := s.CommitRegistration(t.Context(), committedArch("lenet", mnist), owner, useCase(mnist), variantsOf("lenet"))
		wantErr(t, "CommitRegistration", err, metadata.ErrNotFound)
		unchanged(t, s, before)
	}},
	{"already ready", func(t *testing.T, s metadata.Store) {
		register(t, s, "lenet", mnist)
		before := snapshot(t, s)
		vs := []catalog.Variant{variant("lenet", "int8", "basic", 1, 64)}
		wantErr(t, "CommitRegistration again", s.CommitRegistration(t.Context(), committedArch("lenet", mnist), owner, useCase(mnist), vs), metadata.ErrConflict)
		unchanged(t, s, before)
	}},
	{"input contract of an existing use case", func(t *testing.T, s metadata.Store) {
		register(t, s, "lenet", mnist)
		for i, tc := range []struct {
			name string
			edit func(u *catalog.UseCase)
			want error
		}{
			{"other datatype", func(u *catalog.UseCase) { u.Inputs[0].DataType = "FP32" }, metadata.ErrConflict},
			{"other sample shape", func(u *catalog.UseCase) { u.Inputs[0].Shape = []int64{-1, 784} }, metadata.ErrConflict},
			{"other sample rank", func(u *catalog.UseCase) { u.Inputs[0].Shape = []int64{-1, 1, 28, 28, 1} }, metadata.ErrConflict},
			{"other classes", func(u *catalog.UseCase) { u.Classes = 26 }, metadata.ErrConflict},
			{"other tensor name", func(u *catalog.UseCase) { u.Inputs[0].Name = "image" }, nil},
			{"fixed batch dimension", func(u *catalog.UseCase) { u.Inputs[0].Shape = []int64{1, 1, 28, 28} }, nil},
			{"identical", func(*catalog.UseCase) {}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := fmt.Sprintf("arch-%d", i)
				begin(t, s, pendingArch(name, mnist))
				uc := useCase(mnist)
				tc.edit(&uc)
				before := snapshot(t, s)
				err := s.CommitRegistration(t.Context(), committedArch(name, mnist), owner, uc, variantsOf(name))
				wantErr(t, "CommitRegistration", err, tc.want)
				if tc.want != nil {
					unchanged(t, s, before)
					return
				}
				equal(t, "the use case keeps its first definition",
					must[catalog.UseCase](t, "UseCase")(s.UseCase(t.Context(), uc.ID())), useCase(mnist))
			})
		}
	}},
	{"variant name taken", func(t *testing.T, s metadata.Store) {
		_, lenetVariants := register(t, s, "lenet", mnist)
		begin(t, s, pendingArch("mlp", mnist))
		before := snapshot(t, s)
		taken := lenetVariants[1]
		taken.Architecture = "mlp"
		vs := append(variantsOf("mlp"), taken)
		wantErr(t, "CommitRegistration", s.CommitRegistration(t.Context(), committedArch("mlp", mnist), owner, useCase(mnist), vs), metadata.ErrExists)
		unchanged(t, s, before)
		equal(t, "the taken variant", must[catalog.Variant](t, "Variant")(s.Variant(t.Context(), taken.Name)), wantVariant(lenetVariants[1]))
	}},
	{"a failed commit creates no use case", func(t *testing.T, s metadata.Store) {
		_, lenetVariants := register(t, s, "lenet", mnist)
		begin(t, s, pendingArch("mlp", fashion))
		before := snapshot(t, s)
		taken := lenetVariants[0]
		taken.Architecture = "mlp"
		err := s.CommitRegistration(t.Context(), committedArch("mlp", fashion), owner, useCase(fashion), []catalog.Variant{taken})
		wantErr(t, "CommitRegistration", err, metadata.ErrExists)
		unchanged(t, s, before)
		_, err = s.UseCase(t.Context(), useCase(fashion).ID())
		wantErr(t, "UseCase", err, metadata.ErrNotFound)
	}},
	{"rejects inconsistent arguments", func(t *testing.T, s metadata.Store) {
		begin(t, s, pendingArch("lenet", mnist))
		for _, tc := range []struct {
			name string
			uc   catalog.UseCase
			vs   func() []catalog.Variant
		}{
			{"use case of another dataset", useCase(fashion), func() []catalog.Variant { return variantsOf("lenet") }},
			{"variant of another architecture", useCase(mnist), func() []catalog.Variant { return append(variantsOf("lenet"), variantsOf("mlp")[0]) }},
			{"variant listed twice", useCase(mnist), func() []catalog.Variant { return append(variantsOf("lenet"), variantsOf("lenet")[2]) }},
			{"variant without a name", useCase(mnist), func() []catalog.Variant {
				vs := variantsOf("lenet")
				vs[1].Name = ""
				return vs
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t, s)
				err := s.CommitRegistration(t.Context(), committedArch("lenet", mnist), owner, tc.uc, tc.vs())
				wantErr(t, "CommitRegistration", err, metadata.ErrInvalid)
				unchanged(t, s, before)
			})
		}
	}},
	{"concurrent commits share a new use case", func(t *testing.T, s metadata.Store) {
		var want []catalog.Architecture
		var wantVs [][]catalog.Variant
		for i := range racers {
			name := fmt.Sprintf("arch-%02d", i)
			begin(t, s, pendingArch(name, mnist))
			want = append(want, readyCopy(committedArch(name, mnist)))
			wantVs = append(wantVs, variantsOf(name))
		}
		errs := race(t.Context(), racers, func(ctx context.Context, i int) error {
			name := fmt.Sprintf("arch-%02d", i)
			return s.CommitRegistration(ctx, committedArch(name, mnist), owner, useCase(mnist), variantsOf(name))
		})
		for i, err := range errs {
			wantErr(t, fmt.Sprintf("CommitRegistration(arch-%02d)", i), err, nil)
		}
		st := snapshot(t, s)
		equal(t, "Architectures", st.Ready, wantArchs(want...))
		equal(t, "AllVariants", st.Variants, wantVariants(wantVs...))
		equal(t, "UseCases", st.UseCases, []catalog.UseCase{useCase(mnist)})
	}},
	{"concurrent commits of conflicting contracts: exactly one wins", func(t *testing.T, s metadata.Store) {
		for round := range commitRaceRounds {
			dataset := fmt.Sprintf("set-%d", round)
			name := func(i int) string { return fmt.Sprintf("arch-%d-%02d", round, i) }
			contract := func(i int) catalog.UseCase {
				uc := useCase(dataset)
				uc.Classes = 10 + i
				return uc
			}
			for i := range racers {
				begin(t, s, pendingArch(name(i), dataset))
			}
			errs := race(t.Context(), racers, func(ctx context.Context, i int) error {
				return s.CommitRegistration(ctx, committedArch(name(i), dataset), owner, contract(i), variantsOf(name(i)))
			})
			ok, conflicts := tally(t, errs, metadata.ErrConflict)
			if ok != 1 || conflicts != racers-1 {
				t.Fatalf("round %d: %d succeeded and %d got ErrConflict; want 1 and %d", round, ok, conflicts, racers-1)
			}
			for i, err := range errs {
				if err != nil {
					continue
				}
				equal(t, "UseCase", must[catalog.UseCase](t, "UseCase")(s.UseCase(t.Context(), contract(i).ID())), contract(i))
				equal(t, "Variants", must[[]catalog.Variant](t, "Variants")(s.Variants(t.Context(), name(i))), wantVariants(variantsOf(name(i))))
			}
		}
		st := snapshot(t, s)
		if len(st.Ready) != commitRaceRounds || len(st.Pending) != commitRaceRounds*(racers-1) || len(st.Variants) != 3*commitRaceRounds {
			t.Fatalf("%d ready, %d pending, %d variants; want %d, %d, %d", len(st.Ready), len(st.Pending), len(st.Variants),
				commitRaceRounds, commitRaceRounds*(racers-1), 3*commitRaceRounds)
		}
	}},
	{"concurrent commits of one variant name: exactly one wins", func(t *testing.T, s metadata.Store) {
		for round := range commitRaceRounds {
			name := func(i int) string { return fmt.Sprintf("arch-%d-%02d", round, i) }
			sharedName := fmt.Sprintf("shared-%d", round)
			for i := range racers {
				begin(t, s, pendingArch(name(i), mnist))
			}
			errs := race(t.Context(), racers, func(ctx context.Context, i int) error {
				shared := variant(name(i), "fp32", "all", 1, 1)
				shared.Name = sharedName
				vs := append(variantsOf(name(i)), shared)
				return s.CommitRegistration(ctx, committedArch(name(i), mnist), owner, useCase(mnist), vs)
			})
			if ok, exists := tally(t, errs, metadata.ErrExists); ok != 1 || exists != racers-1 {
				t.Fatalf("round %d: %d succeeded and %d got ErrExists; want 1 and %d", round, ok, exists, racers-1)
			}
			for i, err := range errs {
				if err != nil {
					continue
				}
				if got := must[catalog.Variant](t, "Variant")(s.Variant(t.Context(), sharedName)); got.Architecture != name(i) {
					t.Fatalf("round %d: variant %s belongs to %s; the winner is %s", round, sharedName, got.Architecture, name(i))
				}
			}
		}
		st := snapshot(t, s)
		if len(st.Ready) != commitRaceRounds || len(st.Pending) != commitRaceRounds*(racers-1) || len(st.Variants) != 4*commitRaceRounds {
			t.Fatalf("%d ready, %d pending, %d variants; want %d, %d, %d", len(st.Ready), len(st.Pending), len(st.Variants),
				commitRaceRounds, commitRaceRounds*(racers-1), 4*commitRaceRounds)
		}
	}},
}

var abortTests = []test{
	{"removes a pending registration", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		begin(t, s, pendingArch("lenet", mnist))
		wantErr(t, "AbortRegistration", s.AbortRegistration(ctx, "lenet", owner), nil)
		_, err := s.Architecture(ctx, "lenet")
		wantErr(t, "Architecture after abort", err, metadata.ErrNotFound)
		equal(t, "Pending", pendingArchs(t, s), []catalog.Architecture{})
		equal(t, "Digests", must[map[string]struct{}](t, "Digests")(s.Digests(ctx)), map[string]struct{}{})
		register(t, s, "lenet", mnist) // the name is free again
	}},
	{"unknown name", func(t *testing.T, s metadata.Store) {
		wantErr(t, "AbortRegistration", s.AbortRegistration(t.Context(), "ghost", owner), metadata.ErrNotFound)
	}},
	{"leaves a ready architecture alone", func(t *testing.T, s metadata.Store) {
		register(t, s, "lenet", mnist)
		before := snapshot(t, s)
		wantErr(t, "AbortRegistration", s.AbortRegistration(t.Context(), "lenet", owner), metadata.ErrConflict)
		unchanged(t, s, before)
	}},
	{"then commit finds nothing", func(t *testing.T, s metadata.Store) {
		begin(t, s, pendingArch("lenet", mnist))
		wantErr(t, "AbortRegistration", s.AbortRegistration(t.Context(), "lenet", owner), nil)
		err := s.CommitRegistration(t.Context(), committedArch("lenet", mnist), owner, useCase(mnist), variantsOf("lenet"))
		wantErr(t, "CommitRegistration after abort", err, metadata.ErrNotFound)
	}},
}
