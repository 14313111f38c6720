package storetest

import (
	"cmp"
	"slices"
	"time"

	"github.com/infaas/infaas/catalog"
)

// Fixtures fill every field with distinctive values so that a round trip
// that drops or mangles one shows up.

const (
	task    = "classification"
	mnist   = "mnist"
	fashion = "fashion"
)

// registered has nanoseconds and a zone other than UTC: stores must keep the
// instant exactly and return it in UTC.
var registered = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("UTC+1", 3600))

func useCase(dataset string) catalog.UseCase {
	return catalog.UseCase{
		Task:    task,
		Dataset: dataset,
		Contract: catalog.Contract{Batched: true,
			Inputs:  []catalog.TensorSpec{{Name: "pixels", DataType: "UINT8", Shape: []int64{-1, 1, 28, 28}}},
			Outputs: []catalog.TensorSpec{{Name: "scores", DataType: "FP32", Shape: []int64{-1, 10}}}},
		Classes: 10,
	}
}

// pendingArch is an architecture as the registrar begins registering it.
func pendingArch(name, dataset string) catalog.Architecture {
	return catalog.Architecture{
		Name:        name,
		Task:        task,
		Dataset:     dataset,
		State:       catalog.StatePending,
		ModelDigest: "sha256:model-" + name,
		ModelBytes:  26_454,
		Contract: catalog.Contract{Batched: true,
			Inputs:  []catalog.TensorSpec{{Name: "Input3", DataType: "FP32", Shape: []int64{-1, 1, 28, 28}}},
			Outputs: []catalog.TensorSpec{{Name: "Plus214_Output_0", DataType: "FP32", Shape: []int64{-1, 10}}}},
		InputScale:   1.0 / 255,
		DynamicBatch: true,
		RegisteredAt: registered,
	}
}

// committedArch is the same architecture once validated, as the registrar
// commits it (still in state pending: the store makes it ready).
func committedArch(name, dataset string) catalog.Architecture {
	a := pendingArch(name, dataset)
	a.Accuracy = 0.9871
	a.AccuracySource = catalog.AccuracyMeasured
	a.ValidationSamples = 10_000
	a.Dropped = []catalog.DroppedVariant{
		{Name: catalog.VariantName(name, "int8", "basic", 1, 1, "cpu"), Reason: "accuracy fell 3.2 points"},
	}
	return a
}

// variantsOf returns three variants of arch, deliberately not in name order.
func variantsOf(arch string) []catalog.Variant {
	return []catalog.Variant{
		variant(arch, "int8", "all", 2, 8),
		variant(arch, "fp32", "basic", 1, 1),
		variant(arch, "fp32", "extended", 4, 32),
	}
}

func variant(arch, precision, opt string, threads, maxBatch int) catalog.Variant {
	name := catalog.VariantName(arch, precision, opt, threads, maxBatch, "cpu")
	return catalog.Variant{
		Name:           name,
		Architecture:   arch,
		Precision:      precision,
		OptLevel:       opt,
		Provider:       "cpu",
		Hardware:       "cpu",
		Threads:        threads,
		MaxBatch:       maxBatch,
		FileDigest:     "sha256:file-" + name,
		FileBytes:      int64(10_000 + maxBatch),
		Accuracy:       0.9863,
		AccuracySource: catalog.AccuracyMeasured,
		Profile: catalog.Profile{
			LoadMs:          12.625,
			PeakMemoryBytes: 64 << 20,
			LatencyMs: map[int]catalog.Latency{
				1:        {P50: 0.41, P99: 0.93, Samples: 200},
				maxBatch: {P50: 0.3 * float64(maxBatch), P99: 0.7 * float64(maxBatch), Samples: 100},
			},
			ThroughputQPS: 2400.5,
			Hardware:      "2 cores, AMD EPYC 7B13",
			ProfiledAt:    registered.Add(90*time.Second + 7),
		},
	}
}

// readyCopy is arch as a store returns it after committing it.
func readyCopy(a catalog.Architecture) catalog.Architecture {
	a.State = catalog.StateReady
	return a
}

// wantArch, wantVariant and wantVariants are values as a store returns
// them: times in UTC, listings sorted by name.
func wantArch(a catalog.Architecture) catalog.Architecture {
	a.RegisteredAt = a.RegisteredAt.UTC()
	return a
}

func wantVariant(v catalog.Variant) catalog.Variant {
	v.Profile.ProfiledAt = v.Profile.ProfiledAt.UTC()
	return v
}

func wantArchs(as ...catalog.Architecture) []catalog.Architecture {
	out := make([]catalog.Architecture, 0, len(as))
	for _, a := range as {
		out = append(out, wantArch(a))
	}
	slices.SortFunc(out, func(a, b catalog.Architecture) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func wantVariants(vss ...[]catalog.Variant) []catalog.Variant {
	out := []catalog.Variant{}
	for _, vs := range vss {
		for _, v := range vs {
			out = append(out, wantVariant(v))
		}
	}
	slices.SortFunc(out, func(a, b catalog.Variant) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func digestsOf(archs []catalog.Architecture, vss ...[]catalog.Variant) map[string]struct{} {
	set := map[string]struct{}{}
	for _, a := range archs {
		set[a.ModelDigest] = struct{}{}
	}
	for _, vs := range vss {
		for _, v := range vs {
			set[v.FileDigest] = struct{}{}
		}
	}
	return set
}
