package selection

import (
	"slices"

	"github.com/infaas/infaas/catalog"
)

// Kind says what a request names.
type Kind uint8

// Kinds of names. KindAuto, the zero value, resolves a name as a variant,
// else an architecture, else a use case (the catalog's naming rules keep
// them apart: dots only in variant names, a slash only in use-case IDs).
const (
	KindAuto Kind = iota
	KindVariant
	KindArchitecture
	KindUseCase
)

func (k Kind) String() string {
	switch k {
	case KindVariant:
		return "variant"
	case KindArchitecture:
		return "architecture"
	case KindUseCase:
		return "use case"
	}
	return "model"
}

// Resolve says what name means in this snapshot: the kind it resolves to
// (KindAuto picks as described there), or false if it names nothing of
// that kind.
func (s *Snapshot) Resolve(kind Kind, name string) (Kind, bool) {
	_, k, ok := s.lookup(kind, name)
	return k, ok
}

// lookup resolves name as kind, returning the index of what it names in
// t.variant, t.arch or t.usecase according to the kind returned.
func (s *Snapshot) lookup(kind Kind, name string) (target, Kind, bool) {
	t, ok := s.cat.names[name]
	if !ok {
		return t, kind, false
	}
	switch {
	case (kind == KindAuto || kind == KindVariant) && t.variant >= 0:
		return t, KindVariant, true
	case (kind == KindAuto || kind == KindArchitecture) && t.arch >= 0:
		return t, KindArchitecture, true
	case (kind == KindAuto || kind == KindUseCase) && t.usecase >= 0:
		return t, KindUseCase, true
	}
	return t, kind, false
}

// candidates returns every instance the request names, in (cost, index)
// order, and whether the name was found: a variant's instances, those of
// an architecture's variants, or those of every architecture of a use
// case. The slice aliases the snapshot.
func (s *Snapshot) candidates(kind Kind, name string) ([]int32, bool) {
	t, k, ok := s.lookup(kind, name)
	if !ok {
		return nil, false
	}
	c := s.cat
	var sp span
	switch k {
	case KindVariant:
		sp = c.vnames[t.variant].list
	case KindArchitecture:
		sp = c.archs[t.arch].list
	default:
		sp = c.usecases[t.usecase].list
	}
	return c.lists[sp.off : sp.off+sp.n : sp.off+sp.n], true
}

// Accessors. Indexes come from a Decision made on this snapshot; -1 or an
// index out of range panics, like a slice.

// NumVariants is the number of variant instances (a variant on one hardware
// class; see Snapshot): a variant profiled on three listed classes counts
// three times. Every i in [0, NumVariants()) is a valid index for Variant
// and VariantCostPer1k.
func (s *Snapshot) NumVariants() int { return len(s.cat.variants) }

// NumWorkers is the number of workers.
func (s *Snapshot) NumWorkers() int { return len(s.workers) }

// NumReplicas is the number of replicas (skipped ones excluded).
func (s *Snapshot) NumReplicas() int { return len(s.replicas) }

// Variant returns instance i as a catalog.Variant: the variant as it runs on
// the instance's hardware class (catalog.Variant.OnClass), so Name is the
// variant's name, Hardware the class and Profile the profile on that class
// (Profiles is the catalog's, shared). Treat it as read-only.
func (s *Snapshot) Variant(i int32) *catalog.Variant { return &s.cat.variants[i] }

// Instance returns the index of variant name's instance on hardware class
// class, and false when the variant is unknown or has no instance there
// (no profile for the class, or a class other than its reference class
// that Catalog.Classes does not list).
func (s *Snapshot) Instance(name, class string) (int32, bool) {
	t, ok := s.cat.names[name]
	if !ok || t.variant < 0 {
		return -1, false
	}
	sp := s.cat.vnames[t.variant].list
	for _, v := range s.cat.lists[sp.off : sp.off+sp.n] {
		if s.cat.variants[v].Hardware == class {
			return v, true
		}
	}
	return -1, false
}

// Worker returns worker i; treat it as read-only.
func (s *Snapshot) Worker(i int32) *Worker { return &s.workers[i] }

// Replica returns replica i; treat it as read-only.
func (s *Snapshot) Replica(i int32) *Replica { return &s.replicas[i] }

// VariantCostPer1k is instance i's cost in USD per 1,000 queries: its
// hardware class's CostPerHour for its threads, divided by the queries it
// serves in an hour when kept busy at its throughput at max batch profiled
// on that class (Profile.ThroughputQPS, or max batch ÷ p99 at max batch
// when that is missing). +Inf when the class is not in Catalog.Classes or
// the throughput is unknown.
func (s *Snapshot) VariantCostPer1k(i int32) float64 { return s.cat.vi[i].cost }

// Skipped lists the replicas the snapshot ignored and why.
func (s *Snapshot) Skipped() []string { return slices.Clone(s.skipped) }
