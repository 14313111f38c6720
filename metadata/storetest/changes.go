package storetest

import (
	"context"
	"testing"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

var changesTests = []test{
	{"every subscriber is signalled", func(t *testing.T, s metadata.Store) {
		first := must[<-chan struct{}](t, "Changes")(s.Changes(t.Context()))
		second := must[<-chan struct{}](t, "Changes")(s.Changes(t.Context()))
		register(t, s, "lenet", mnist)
		wantSignal(t, "first subscriber", first)
		wantSignal(t, "second subscriber", second)
	}},
	{"signals coalesce for a slow reader", func(t *testing.T, s metadata.Store) {
		changes := must[<-chan struct{}](t, "Changes")(s.Changes(t.Context()))
		for _, name := range []string{"a", "b", "c", "d"} {
			register(t, s, name, mnist)
		}
		wantSignal(t, "after four commits", changes)
		if n := len(changes); n > 1 {
			t.Fatalf("%d signals are buffered; want at most one", n)
		}
	}},
	{"the channel closes when its context ends", func(t *testing.T, s metadata.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		changes := must[<-chan struct{}](t, "Changes")(s.Changes(ctx))
		kept := must[<-chan struct{}](t, "Changes")(s.Changes(t.Context()))
		cancel()
		wantClosed(t, "after cancel", changes)
		register(t, s, "lenet", mnist)
		wantSignal(t, "another subscriber after one ended", kept)
	}},
}

var twoClientTests = []pairTest{
	{"commit, abort, delete and SetProfile signal the other client", func(t *testing.T, a, b metadata.Store) {
		ctx := t.Context()
		changes := must[<-chan struct{}](t, "Changes")(b.Changes(ctx))
		_, vs := register(t, a, "lenet", mnist)
		wantSignal(t, "commit", changes)
		begin(t, a, pendingArch("mlp", mnist))
		wantErr(t, "AbortRegistration", a.AbortRegistration(ctx, "mlp", owner), nil)
		wantSignal(t, "abort", changes)
		wantErr(t, "SetProfile", a.SetProfile(ctx, vs[0].Name, "gpu", gpuProfile(3)), nil)
		wantSignal(t, "SetProfile", changes)
		wantErr(t, "DeleteArchitecture", a.DeleteArchitecture(ctx, "lenet"), nil)
		wantSignal(t, "delete", changes)
	}},
	{"a commit through one client is visible through the other at its signal", func(t *testing.T, a, b metadata.Store) {
		changes := must[<-chan struct{}](t, "Changes")(b.Changes(t.Context()))
		arch, vs := register(t, a, "lenet", mnist)
		wantSignal(t, "commit", changes)
		equal(t, "Variants through b", must[[]catalog.Variant](t, "Variants")(b.Variants(t.Context(), "lenet")), wantVariants(vs))
		equal(t, "Architectures through b", must[[]catalog.Architecture](t, "Architectures")(b.Architectures(t.Context())),
			wantArchs(readyCopy(arch)))
	}},
	{"the blob lock excludes the other client", testLockExcludes},
	{"writes that add references wait for the other client's blob lock", testReferencesWait},
	{"a lease protects a registration from the other client until it expires", testLeaseAcrossClients},
}
