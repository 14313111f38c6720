package metadata

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/infaas/infaas/catalog"
)

// Errors a Store returns, wrapped with context; test with errors.Is.
var (
	// ErrNotFound: no record with that name or ID.
	ErrNotFound = errors.New("not found")
	// ErrExists: the name is already taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: the request contradicts what is stored (a use case's
	// input contract, or the state of an architecture).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the arguments are inconsistent on their own (an empty
	// name, a variant of another architecture, a wrong state); a caller bug.
	ErrInvalid = errors.New("invalid argument")
)

// Store persists the catalog. Every method is safe for concurrent use, and
// every method that writes more than one record does so atomically: on error
// nothing has changed. Listings are never nil and are sorted by name (use
// cases by ID). Times come back in UTC without a monotonic reading.
type Store interface {
	// BeginRegistration records arch, whose State must be
	// catalog.StatePending, so that its name is taken. ErrExists if an
	// architecture of that name exists in any state.
	BeginRegistration(ctx context.Context, arch catalog.Architecture) error
	// CommitRegistration atomically replaces the pending architecture of
	// arch.Name with arch in state ready, stores its variants, and creates
	// use case uc if it does not exist yet. ErrNotFound if no architecture
	// of that name exists, ErrConflict if it is already ready or if uc
	// exists with a different input contract (see CheckInputContract),
	// ErrExists if a variant name is taken, ErrInvalid if uc is not arch's
	// use case or a variant names another architecture.
	CommitRegistration(ctx context.Context, arch catalog.Architecture, uc catalog.UseCase, variants []catalog.Variant) error
	// AbortRegistration removes a pending architecture. ErrNotFound if none
	// has that name, ErrConflict if it is ready (use DeleteArchitecture).
	AbortRegistration(ctx context.Context, name string) error
	// Pending lists the pending architectures, for crash recovery.
	Pending(ctx context.Context) ([]catalog.Architecture, error)

	// Architecture returns the architecture of that name in any state.
	Architecture(ctx context.Context, name string) (catalog.Architecture, error)
	// Architectures lists the ready architectures.
	Architectures(ctx context.Context) ([]catalog.Architecture, error)
	// Variants lists an architecture's variants; ErrNotFound if the
	// architecture does not exist (a pending one has none).
	Variants(ctx context.Context, arch string) ([]catalog.Variant, error)
	// Variant returns the variant of that name.
	Variant(ctx context.Context, name string) (catalog.Variant, error)
	// AllVariants lists every variant of every ready architecture.
	AllVariants(ctx context.Context) ([]catalog.Variant, error)
	// UseCase returns the use case with that ID ("task/dataset").
	UseCase(ctx context.Context, id string) (catalog.UseCase, error)
	// UseCases lists the use cases.
	UseCases(ctx context.Context) ([]catalog.UseCase, error)

	// DeleteArchitecture removes a ready architecture and its variants, and
	// its use case when no other ready architecture belongs to it.
	// ErrNotFound if absent, ErrConflict if pending (use AbortRegistration).
	DeleteArchitecture(ctx context.Context, name string) error
	// Digests returns every blob digest referenced by an architecture
	// (pending or ready) or a variant; blobs outside it are garbage.
	Digests(ctx context.Context) (map[string]struct{}, error)

	// Close releases the store; no method may be called afterwards.
	Close() error
}

// CheckInputContract reports, wrapped in ErrConflict, how proposed differs
// from the stored use case: every architecture of a use case must accept the
// same raw input (datatype and per-sample shape) and produce the same number
// of classes. Tensor names and the batch dimension may differ.
func CheckInputContract(stored, proposed catalog.UseCase) error {
	if stored.Input.DataType == proposed.Input.DataType &&
		slices.Equal(stored.Input.SampleShape(), proposed.Input.SampleShape()) &&
		stored.Classes == proposed.Classes {
		return nil
	}
	return fmt.Errorf("%w: use case %s takes %s and has %d classes, but this architecture declares %s and %d classes",
		ErrConflict, stored.ID(), describeInput(stored.Input), stored.Classes, describeInput(proposed.Input), proposed.Classes)
}

func describeInput(t catalog.TensorSpec) string {
	return fmt.Sprintf("%s samples of shape %v", t.DataType, t.SampleShape())
}

func checkBegin(arch catalog.Architecture) error {
	if arch.Name == "" {
		return fmt.Errorf("%w: architecture name is empty", ErrInvalid)
	}
	if arch.State != catalog.StatePending {
		return fmt.Errorf("%w: state is %q, want %q", ErrInvalid, arch.State, catalog.StatePending)
	}
	return nil
}

func checkCommit(arch catalog.Architecture, uc catalog.UseCase, variants []catalog.Variant) error {
	if arch.Name == "" {
		return fmt.Errorf("%w: architecture name is empty", ErrInvalid)
	}
	if uc.ID() != arch.UseCaseID() {
		return fmt.Errorf("%w: use case %s is not the architecture's use case %s", ErrInvalid, uc.ID(), arch.UseCaseID())
	}
	seen := make(map[string]bool, len(variants))
	for _, v := range variants {
		switch {
		case v.Name == "":
			return fmt.Errorf("%w: a variant has an empty name", ErrInvalid)
		case v.Architecture != arch.Name:
			return fmt.Errorf("%w: variant %s belongs to architecture %q", ErrInvalid, v.Name, v.Architecture)
		case seen[v.Name]:
			return fmt.Errorf("%w: variant %s is listed twice", ErrInvalid, v.Name)
		}
		seen[v.Name] = true
	}
	return nil
}

// readyCopy is arch as CommitRegistration stores it.
func readyCopy(arch catalog.Architecture) catalog.Architecture {
	arch.State = catalog.StateReady
	return arch
}

// Records are stored as JSON. Times are normalised to UTC first so that what
// comes back equals what went in field by field (no zone, no monotonic clock)
// whichever store holds it.

func encodeArch(a catalog.Architecture) ([]byte, error) {
	a.RegisteredAt = a.RegisteredAt.UTC()
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode architecture %s: %w", a.Name, err)
	}
	return b, nil
}

func decodeArch(name string, b []byte) (catalog.Architecture, error) {
	var a catalog.Architecture
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("decode architecture %s: %w", name, err)
	}
	return a, nil
}

func encodeVariant(v catalog.Variant) ([]byte, error) {
	v.Profile.ProfiledAt = v.Profile.ProfiledAt.UTC()
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode variant %s: %w", v.Name, err)
	}
	return b, nil
}

func decodeVariant(name string, b []byte) (catalog.Variant, error) {
	var v catalog.Variant
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("decode variant %s: %w", name, err)
	}
	return v, nil
}

func encodeUseCase(u catalog.UseCase) ([]byte, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode use case %s: %w", u.ID(), err)
	}
	return b, nil
}

func decodeUseCase(id string, b []byte) (catalog.UseCase, error) {
	var u catalog.UseCase
	if err := json.Unmarshal(b, &u); err != nil {
		return u, fmt.Errorf("decode use case %s: %w", id, err)
	}
	return u, nil
}

func sortArchs(as []catalog.Architecture) {
	slices.SortFunc(as, func(a, b catalog.Architecture) int { return cmp.Compare(a.Name, b.Name) })
}

func sortVariants(vs []catalog.Variant) {
	slices.SortFunc(vs, func(a, b catalog.Variant) int { return cmp.Compare(a.Name, b.Name) })
}

func sortUseCases(us []catalog.UseCase) {
	slices.SortFunc(us, func(a, b catalog.UseCase) int { return cmp.Compare(a.ID(), b.ID()) })
}

// addDigest adds d to set unless it is empty.
func addDigest(set map[string]struct{}, d string) {
	if d != "" {
		set[d] = struct{}{}
	}
}
