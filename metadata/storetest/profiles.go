package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

// gpuProfile is a distinctive profile for another hardware class, with a
// time outside UTC that the store must return in UTC.
func gpuProfile(loadMs float64) catalog.Profile {
	return catalog.Profile{
		LoadMs:          loadMs,
		PeakMemoryBytes: 900 << 20,
		LatencyMs:       map[int]catalog.Latency{1: {P50: 0.2, P99: 0.31, Samples: 500}, 32: {P50: 1.5, P99: 2.25, Samples: 50}},
		ThroughputQPS:   21_333.5,
		Hardware:        "NVIDIA T4",
		ProfiledAt:      registered.Add(time.Hour + 11),
	}
}

func withProfiles(v catalog.Variant, profiles map[string]catalog.Profile) catalog.Variant {
	v.Profiles = map[string]catalog.Profile{}
	for c, p := range profiles {
		p.ProfiledAt = p.ProfiledAt.UTC()
		v.Profiles[c] = p
	}
	return v
}

var profileTests = []test{
	{"sets one class and keeps the rest", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		_, vs := register(t, s, "lenet", mnist)
		_, others := register(t, s, "mlp", mnist)
		target := vs[1]
		t4, a10 := gpuProfile(120), gpuProfile(80)

		wantErr(t, "SetProfile(gpu-t4)", s.SetProfile(ctx, target.Name, "gpu-t4", t4), nil)
		equal(t, "Variant", must[catalog.Variant](t, "Variant")(s.Variant(ctx, target.Name)),
			wantVariant(withProfiles(target, map[string]catalog.Profile{"gpu-t4": t4})))

		wantErr(t, "SetProfile(gpu-a10)", s.SetProfile(ctx, target.Name, "gpu-a10", a10), nil)
		replaced := gpuProfile(99)
		wantErr(t, "SetProfile(gpu-t4) again", s.SetProfile(ctx, target.Name, "gpu-t4", replaced), nil)
		got := must[catalog.Variant](t, "Variant")(s.Variant(ctx, target.Name))
		equal(t, "Variant with two classes", got,
			wantVariant(withProfiles(target, map[string]catalog.Profile{"gpu-t4": replaced, "gpu-a10": a10})))
		if p, ok := got.ProfileOn("gpu-a10"); !ok || p.LoadMs != a10.LoadMs {
			t.Fatalf("ProfileOn(gpu-a10) = %+v, %v", p, ok)
		}

		want := wantVariants(vs, others)
		for i := range want {
			if want[i].Name == target.Name {
				want[i] = got
			}
		}
		equal(t, "AllVariants", must[[]catalog.Variant](t, "AllVariants")(s.AllVariants(ctx)), want)
		equal(t, "Architecture is untouched", must[catalog.Architecture](t, "Architecture")(s.Architecture(ctx, "lenet")),
			wantArch(readyCopy(committedArch("lenet", mnist))))
	}},
	{"the reference class may be listed too", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		_, vs := register(t, s, "lenet", mnist)
		p := gpuProfile(5)
		wantErr(t, "SetProfile(reference class)", s.SetProfile(ctx, vs[0].Name, vs[0].Hardware, p), nil)
		got := must[catalog.Variant](t, "Variant")(s.Variant(ctx, vs[0].Name))
		equal(t, "Variant", got, wantVariant(withProfiles(vs[0], map[string]catalog.Profile{vs[0].Hardware: p})))
	}},
	{"unknown variant or empty class", func(t *testing.T, s metadata.Store) {
		ctx := t.Context()
		_, vs := register(t, s, "lenet", mnist)
		begin(t, s, pendingArch("pending", mnist))
		before := snapshot(t, s)
		wantErr(t, "SetProfile(ghost)", s.SetProfile(ctx, "ghost.fp32.all.t1.b1.cpu", "gpu", gpuProfile(1)), metadata.ErrNotFound)
		wantErr(t, "SetProfile(variant of a pending architecture)",
			s.SetProfile(ctx, variantsOf("pending")[0].Name, "gpu", gpuProfile(1)), metadata.ErrNotFound)
		wantErr(t, "SetProfile(empty class)", s.SetProfile(ctx, vs[0].Name, "", gpuProfile(1)), metadata.ErrInvalid)
		unchanged(t, s, before)
	}},
	{"concurrent classes all land", func(t *testing.T, s metadata.Store) {
		_, vs := register(t, s, "lenet", mnist)
		class := func(i int) string { return fmt.Sprintf("class-%02d", i) }
		errs := race(t.Context(), racers, func(ctx context.Context, i int) error {
			return s.SetProfile(ctx, vs[0].Name, class(i), gpuProfile(float64(i)))
		})
		want := map[string]catalog.Profile{}
		for i, err := range errs {
			wantErr(t, "SetProfile("+class(i)+")", err, nil)
			want[class(i)] = gpuProfile(float64(i))
		}
		equal(t, "Variant", must[catalog.Variant](t, "Variant")(s.Variant(t.Context(), vs[0].Name)), wantVariant(withProfiles(vs[0], want)))
	}},
	{"a concurrent delete is not undone", func(t *testing.T, s metadata.Store) {
		for round := range raceRounds {
			name := fmt.Sprintf("arch-%d", round)
			_, vs := register(t, s, name, mnist)
			errs := race(t.Context(), racers, func(ctx context.Context, i int) error {
				if i == 0 {
					return s.DeleteArchitecture(ctx, name)
				}
				return s.SetProfile(ctx, vs[i%len(vs)].Name, "gpu", gpuProfile(float64(i)))
			})
			wantErr(t, "DeleteArchitecture", errs[0], nil)
			tally(t, errs[1:], metadata.ErrNotFound) // each SetProfile lands before the delete or finds nothing
			for _, v := range vs {
				_, err := s.Variant(t.Context(), v.Name)
				wantErr(t, fmt.Sprintf("round %d: Variant(%s) after the race", round, v.Name), err, metadata.ErrNotFound)
			}
		}
		equal(t, "AllVariants", must[[]catalog.Variant](t, "AllVariants")(s.AllVariants(t.Context())), []catalog.Variant{})
	}},
}
