package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

var leaseTests = []test{
	{"Pending shows the owner and a live lease", func(t *testing.T, s metadata.Store) {
		arch := pendingArch("lenet", mnist)
		begin(t, s, arch)
		p := pendingOf(t, s, "lenet")
		equal(t, "Pending's architecture", p.Architecture, wantArch(arch))
		if p.Owner != owner || p.Expired || p.LeaseUntil.IsZero() || p.LeaseUntil.Location() != time.UTC {
			t.Fatalf("lease: owner %q, until %v, expired %v; want %q, a UTC expiry, live", p.Owner, p.LeaseUntil, p.Expired, owner)
		}
		equal(t, "Pending's digests", p.Digests, []string{})
	}},
	{"renewing moves the expiry and keeps the digests", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		begin(t, s, pendingArch("lenet", mnist))
		wantErr(t, "AddPendingDigests", s.AddPendingDigests(ctx, "lenet", owner, "sha256:graph"), nil)
		first := pendingOf(t, s, "lenet").LeaseUntil
		wantErr(t, "RenewLease", s.RenewLease(ctx, "lenet", owner, 2*leaseTTL), nil)
		p := pendingOf(t, s, "lenet")
		if !p.LeaseUntil.After(first) || p.Expired || p.Owner != owner {
			t.Fatalf("after renewing for %v: until %v (was %v), expired %v, owner %q", 2*leaseTTL, p.LeaseUntil, first, p.Expired, p.Owner)
		}
		equal(t, "digests after renewing", p.Digests, []string{"sha256:graph"})
	}},
	{"another owner may not touch a live registration", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		begin(t, s, pendingArch("lenet", mnist))
		before := snapshot(t, s)
		lease := pendingOf(t, s, "lenet")
		wantErr(t, "RenewLease", s.RenewLease(ctx, "lenet", other, leaseTTL), metadata.ErrConflict)
		wantErr(t, "AddPendingDigests", s.AddPendingDigests(ctx, "lenet", other, "sha256:x"), metadata.ErrConflict)
		wantErr(t, "CommitRegistration", s.CommitRegistration(ctx, committedArch("lenet", mnist), other, useCase(mnist), variantsOf("lenet")), metadata.ErrConflict)
		wantErr(t, "AbortRegistration", s.AbortRegistration(ctx, "lenet", other), metadata.ErrConflict)
		unchanged(t, s, before)
		equal(t, "lease after the refused calls", pendingOf(t, s, "lenet"), lease)
		commit(t, s, committedArch("lenet", mnist), useCase(mnist), variantsOf("lenet"))
	}},
	{"errors of RenewLease and AddPendingDigests", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		register(t, s, "ready", mnist)
		begin(t, s, pendingArch("pending", mnist))
		begin(t, s, pendingArch("aborted", mnist))
		wantErr(t, "AbortRegistration", s.AbortRegistration(ctx, "aborted", owner), nil)
		before := snapshot(t, s)
		for _, tc := range []struct {
			name, arch, owner string
			ttl               time.Duration
			want              error
		}{
			{"unknown", "ghost", owner, leaseTTL, metadata.ErrNotFound},
			{"aborted", "aborted", owner, leaseTTL, metadata.ErrNotFound},
			{"ready", "ready", owner, leaseTTL, metadata.ErrConflict},
			{"no owner", "pending", "", leaseTTL, metadata.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantErr(t, "RenewLease", s.RenewLease(ctx, tc.arch, tc.owner, tc.ttl), tc.want)
				wantErr(t, "AddPendingDigests", s.AddPendingDigests(ctx, tc.arch, tc.owner, "sha256:x"), tc.want)
			})
		}
		wantErr(t, "RenewLease for no time", s.RenewLease(ctx, "pending", owner, 0), metadata.ErrInvalid)
		wantErr(t, "AbortRegistration without an owner", s.AbortRegistration(ctx, "pending", ""), metadata.ErrInvalid)
		wantErr(t, "CommitRegistration without an owner",
			s.CommitRegistration(ctx, committedArch("pending", mnist), "", useCase(mnist), variantsOf("pending")), metadata.ErrInvalid)
		unchanged(t, s, before)
	}},
	{"an expired lease", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		beginExpired(t, s, pendingArch("abandoned", mnist), owner)
		beginExpired(t, s, pendingArch("slow", mnist), owner)
		beginExpired(t, s, pendingArch("late", mnist), owner)

		// Only its owner may still renew it, add to it or commit it...
		wantErr(t, "RenewLease by another owner", s.RenewLease(ctx, "slow", other, leaseTTL), metadata.ErrConflict)
		wantErr(t, "AddPendingDigests by another owner", s.AddPendingDigests(ctx, "slow", other, "sha256:x"), metadata.ErrConflict)
		wantErr(t, "CommitRegistration by another owner",
			s.CommitRegistration(ctx, committedArch("late", mnist), other, useCase(mnist), variantsOf("late")), metadata.ErrConflict)
		wantErr(t, "RenewLease by its owner", s.RenewLease(ctx, "slow", owner, leaseTTL), nil)
		if p := pendingOf(t, s, "slow"); p.Expired || p.Owner != owner {
			t.Fatalf("renewed lease: expired %v, owner %q; want live, %q", p.Expired, p.Owner, owner)
		}
		wantErr(t, "AbortRegistration of the renewed lease by another owner", s.AbortRegistration(ctx, "slow", other), metadata.ErrConflict)
		commit(t, s, committedArch("late", mnist), useCase(mnist), variantsOf("late"))

		// ...but anyone may abort it.
		wantErr(t, "AbortRegistration by another owner", s.AbortRegistration(ctx, "abandoned", other), nil)
		equal(t, "Pending", pendingArchs(t, s), wantArchs(pendingArch("slow", mnist)))
	}},
	{"pending digests are referenced until commit or abort", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		lenet, mlp := pendingArch("lenet", mnist), pendingArch("mlp", mnist)
		begin(t, s, lenet)
		begin(t, s, mlp)
		wantErr(t, "AddPendingDigests", s.AddPendingDigests(ctx, "lenet", owner, "sha256:b", "", "sha256:a", "sha256:b"), nil)
		wantErr(t, "AddPendingDigests again", s.AddPendingDigests(ctx, "lenet", owner, "sha256:c", "sha256:a"), nil)
		wantErr(t, "AddPendingDigests to mlp", s.AddPendingDigests(ctx, "mlp", owner, "sha256:m"), nil)
		equal(t, "Pending(lenet).Digests", pendingOf(t, s, "lenet").Digests, []string{"sha256:a", "sha256:b", "sha256:c"})
		want := digestsOf([]catalog.Architecture{lenet, mlp})
		for _, d := range []string{"sha256:a", "sha256:b", "sha256:c", "sha256:m"} {
			want[d] = struct{}{}
		}
		equal(t, "Digests", must[map[string]struct{}](t, "Digests")(s.Digests(ctx)), want)

		committed, vs := committedArch("lenet", mnist), variantsOf("lenet")
		commit(t, s, committed, useCase(mnist), vs)
		wantErr(t, "AbortRegistration(mlp)", s.AbortRegistration(ctx, "mlp", owner), nil)
		equal(t, "Digests after commit and abort", must[map[string]struct{}](t, "Digests")(s.Digests(ctx)),
			digestsOf([]catalog.Architecture{committed}, vs))
		begin(t, s, mlp)
		equal(t, "Pending(mlp).Digests after beginning again", pendingOf(t, s, "mlp").Digests, []string{})
	}},
	{"an expired registration keeps its digests until it is aborted", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		arch := pendingArch("lenet", mnist)
		wantErr(t, "BeginRegistration", s.BeginRegistration(ctx, arch, owner, time.Millisecond), nil)
		wantErr(t, "AddPendingDigests", s.AddPendingDigests(ctx, "lenet", owner, "sha256:graph"), nil)
		eventually(t, "the lease to expire", func() bool { return pendingOf(t, s, "lenet").Expired })
		want := digestsOf([]catalog.Architecture{arch})
		want["sha256:graph"] = struct{}{}
		equal(t, "Digests", must[map[string]struct{}](t, "Digests")(s.Digests(ctx)), want)
		wantErr(t, "AbortRegistration", s.AbortRegistration(ctx, "lenet", other), nil)
		equal(t, "Digests after abort", must[map[string]struct{}](t, "Digests")(s.Digests(ctx)), map[string]struct{}{})
	}},
	{"concurrent AddPendingDigests all land", func(t *testing.T, s metadata.Store) {
		begin(t, s, pendingArch("lenet", mnist))
		digest := func(i int) string { return fmt.Sprintf("sha256:graph-%02d", i) }
		errs := race(t.Context(), racers, func(ctx context.Context, i int) error {
			if i%2 == 1 {
				if err := s.RenewLease(ctx, "lenet", owner, leaseTTL); err != nil {
					return err
				}
			}
			return s.AddPendingDigests(ctx, "lenet", owner, digest(i))
		})
		var want []string
		for i, err := range errs {
			wantErr(t, fmt.Sprintf("AddPendingDigests(%s)", digest(i)), err, nil)
			want = append(want, digest(i))
		}
		equal(t, "Pending(lenet).Digests", pendingOf(t, s, "lenet").Digests, want)
	}},
}
