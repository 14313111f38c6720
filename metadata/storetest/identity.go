package storetest

import (
	"testing"

	"github.com/infaas/infaas/metadata"
)

// Identity: made on first use, stable afterwards, the same through every
// client of one store, different between stores.
var identityTests = []pairTest{
	{"StableAndShared", func(t *testing.T, a, b metadata.Store) {
		ctx := t.Context()
		first := must[string](t, "Identity")(a.Identity(ctx))
		if len(first) < 16 {
			t.Fatalf("Identity = %q, want a random ID", first)
		}
		if again := must[string](t, "Identity")(a.Identity(ctx)); again != first {
			t.Fatalf("Identity changed from %q to %q", first, again)
		}
		if other := must[string](t, "Identity")(b.Identity(ctx)); other != first {
			t.Fatalf("second client's Identity = %q, want %q", other, first)
		}
	}},
}
