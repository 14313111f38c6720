package metadata

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/infaas/infaas/catalog"
)

// Errors a Store returns, wrapped with context; test with errors.Is.
var (
	// ErrNotFound: no record with that name or ID.
	ErrNotFound = errors.New("not found")
	// ErrExists: the name is already taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: the request contradicts what is stored (a use case's
	// input contract, the state of an architecture, or a registration
	// another owner holds the lease of).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the arguments are inconsistent on their own (an empty
	// name, a variant of another architecture, a wrong state); a caller bug.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnavailable: the store could not be reached (connection refused or
	// reset, a network timeout, no free connection). Nothing is known to
	// have changed; the call may be retried. The wrapped error keeps the
	// original cause.
	ErrUnavailable = errors.New("the metadata store is unreachable")
)

// Store persists the catalog. Every method is safe for concurrent use, and
// every method that writes more than one record does so atomically: on error
// nothing has changed. Listings are never nil and are sorted by name (use
// cases by ID). Times come back in UTC without a monotonic reading.
//
// Several processes may share one store (RedisStore). A registration in
// flight is a pending architecture held under a lease: an owner (the ID of
// the registering process) and an expiry, both judged by the store's own
// clock (Redis: the server's TIME; bbolt: the one process's clock), so that
// processes with skewed clocks agree on which leases have expired. The owner
// renews the lease while it works; only the owner may commit, renew or add
// digests; anyone may abort a registration whose lease has expired, which is
// how a process cleans up after another that died.
//
// Blob garbage collection spans the store and the blob repository: a
// collector holds LockBlobs from reading Digests until it has deleted what
// was unreferenced, and the writes that can add a reference
// (BeginRegistration, AddPendingDigests, CommitRegistration) wait while
// another holds that lock. A registration therefore references every blob
// before writing it, and no collector can delete a blob between the two.
type Store interface {
	// BeginRegistration records arch, whose State must be
	// catalog.StatePending, so that its name is taken, under a lease held
	// by owner for ttl from now (store clock). arch.ModelDigest is
	// referenced from then on. ErrExists if an architecture of that name
	// exists in any state; ErrInvalid for an empty owner or ttl <= 0.
	BeginRegistration(ctx context.Context, arch catalog.Architecture, owner string, ttl time.Duration) error
	// RenewLease extends the lease of the pending registration name to ttl
	// from now (store clock). The owner may renew a lease that has expired
	// as long as nobody has aborted the registration. ErrNotFound if there
	// is no such architecture, ErrConflict if another owner holds it or it
	// is ready.
	RenewLease(ctx context.Context, name, owner string, ttl time.Duration) error
	// AddPendingDigests makes the pending registration name reference
	// digests too (blobs it is about to write), so that Digests protects
	// them from garbage collection until the registration is committed or
	// aborted. Empty digests and ones already listed are ignored. Same
	// errors as RenewLease.
	AddPendingDigests(ctx context.Context, name, owner string, digests ...string) error
	// CommitRegistration atomically replaces the pending architecture of
	// arch.Name with arch in state ready, stores its variants, creates use
	// case uc if it does not exist yet, and releases the lease (its pending
	// digests go with it: from then on the architecture and its variants
	// reference their blobs). ErrNotFound if no architecture of that name
	// exists, ErrConflict if it is already ready, if another owner holds
	// the lease, or if uc exists with a different input contract (see
	// CheckInputContract), ErrExists if a variant name is taken,
	// ErrInvalid if uc is not arch's use case or a variant names another
	// architecture.
	CommitRegistration(ctx context.Context, arch catalog.Architecture, owner string, uc catalog.UseCase, variants []catalog.Variant) error
	// AbortRegistration removes a pending architecture and its lease, if
	// owner holds the lease or the lease has expired. ErrNotFound if none
	// has that name, ErrConflict if it is ready (use DeleteArchitecture) or
	// another owner holds an unexpired lease.
	AbortRegistration(ctx context.Context, name, owner string) error
	// Pending lists the pending registrations with their leases, for crash
	// recovery.
	Pending(ctx context.Context) ([]PendingRegistration, error)

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

	// SetProfile atomically sets the stored variant's Profiles[class] to p,
	// leaving every other field and class as it is. ErrNotFound if no
	// variant has that name (a concurrent delete wins: the variant is not
	// recreated), ErrInvalid for an empty class.
	SetProfile(ctx context.Context, variant, class string, p catalog.Profile) error

	// DeleteArchitecture removes a ready architecture and its variants, and
	// its use case when no other ready architecture belongs to it.
	// ErrNotFound if absent, ErrConflict if pending (use AbortRegistration).
	DeleteArchitecture(ctx context.Context, name string) error
	// Digests returns every blob digest referenced by an architecture
	// (pending or ready), a pending registration's added digests (whether
	// or not its lease has expired: it protects them until it is aborted),
	// or a variant; blobs outside it are garbage.
	Digests(ctx context.Context) (map[string]struct{}, error)
	// LockBlobs takes the store-wide blob lock, waiting until it is free or
	// ctx ends; every process sharing the store contends for the same lock.
	// While it is held, writes that can add a blob reference wait. held is
	// derived from ctx and is canceled when the lock is released or lost
	// (a RedisStore's lock expires if its holder stops renewing it, e.g.
	// because it died or lost the server); do the deletions with it.
	// release must be called, and may be called more than once.
	LockBlobs(ctx context.Context) (held context.Context, release func(), err error)

	// Changes returns a channel that receives a value whenever any process
	// sharing the store commits, aborts or deletes a registration or sets
	// a profile. Signals coalesce (the channel buffers one) and carry no
	// detail: re-read what you need. The subscription is in place when
	// Changes returns; a RedisStore also signals after it had to reconnect,
	// since a change may have been missed. The channel is closed when ctx
	// ends or the store is closed.
	Changes(ctx context.Context) (<-chan struct{}, error)

	// Identity names this store: a random ID created the first time it is
	// asked and kept with the records, so a store that was emptied or
	// replaced (Redis restarted without persistence, another URL) has a
	// new one. The blob collector compares it with the identity recorded
	// beside the blobs and refuses to collect for a stranger.
	Identity(ctx context.Context) (string, error)

	// Close releases the store; no method may be called afterwards.
	Close() error
}

// PendingRegistration is a registration in flight: the pending architecture
// and the lease it is held under.
type PendingRegistration struct {
	Architecture catalog.Architecture
	// Owner identifies the process registering it; empty for a record
	// written without a lease (treated as expired).
	Owner string
	// LeaseUntil is when the lease expires, by the store's clock.
	LeaseUntil time.Time
	// Expired reports whether the store's clock had reached LeaseUntil
	// when the listing was taken.
	Expired bool
	// Digests are the blobs it added with AddPendingDigests, sorted.
	Digests []string
}

// lease is what a store keeps beside a pending architecture. Until is in
// the store's clock.
type lease struct {
	Owner   string    `json:"owner"`
	Until   time.Time `json:"until"`
	Digests []string  `json:"digests,omitempty"`
}

func (l lease) expired(now time.Time) bool { return !now.Before(l.Until) }

// checkHolder reports, wrapped in ErrConflict, unless owner holds l
// (expired or not).
func checkHolder(l lease, owner string, now time.Time) error {
	if l.Owner == owner {
		return nil
	}
	return fmt.Errorf("the registration is held by %s (lease %s): %w", describeOwner(l.Owner), describeExpiry(l, now), ErrConflict)
}

// checkAbort reports, wrapped in ErrConflict, unless owner holds l or l has
// expired.
func checkAbort(l lease, owner string, now time.Time) error {
	if l.Owner == owner || l.expired(now) {
		return nil
	}
	return fmt.Errorf("the registration is held by %s (lease %s): %w", describeOwner(l.Owner), describeExpiry(l, now), ErrConflict)
}

func describeOwner(o string) string {
	if o == "" {
		return "no owner"
	}
	return fmt.Sprintf("%q", o)
}

func describeExpiry(l lease, now time.Time) string {
	if l.expired(now) {
		return "expired"
	}
	return "valid for another " + l.Until.Sub(now).Round(time.Millisecond).String()
}

func checkLease(owner string, ttl time.Duration) error {
	if owner == "" {
		return fmt.Errorf("%w: owner is empty", ErrInvalid)
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: lease duration %v is not positive", ErrInvalid, ttl)
	}
	return nil
}

func checkOwner(owner string) error {
	if owner == "" {
		return fmt.Errorf("%w: owner is empty", ErrInvalid)
	}
	return nil
}

// newLease is a lease of owner for ttl from now, in UTC to the microsecond
// (what Redis TIME resolves).
func newLease(owner string, now time.Time, ttl time.Duration) lease {
	return lease{Owner: owner, Until: now.Add(ttl).UTC().Truncate(time.Microsecond)}
}

// addDigests returns l with digests added, sorted and without duplicates
// or empty ones.
func (l lease) addDigests(digests []string) lease {
	set := make(map[string]struct{}, len(l.Digests)+len(digests))
	for _, d := range l.Digests {
		addDigest(set, d)
	}
	for _, d := range digests {
		addDigest(set, d)
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	slices.Sort(out)
	l.Digests = out
	return l
}

func encodeLease(name string, l lease) ([]byte, error) {
	l.Until = l.Until.UTC()
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encode lease of %s: %w", name, err)
	}
	return b, nil
}

func decodeLease(name string, b []byte) (lease, error) {
	var l lease
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("decode lease of %s: %w", name, err)
	}
	return l, nil
}

// pendingOf is the listing entry of a pending architecture; l is its lease,
// or the zero lease (expired, no owner) when none is stored.
func pendingOf(a catalog.Architecture, l lease, now time.Time) PendingRegistration {
	ds := l.Digests
	if ds == nil {
		ds = []string{}
	}
	return PendingRegistration{Architecture: a, Owner: l.Owner, LeaseUntil: l.Until, Expired: l.expired(now), Digests: ds}
}

func sortPending(ps []PendingRegistration) {
	slices.SortFunc(ps, func(a, b PendingRegistration) int { return cmp.Compare(a.Architecture.Name, b.Architecture.Name) })
}

// setProfile returns v with Profiles[class] = p, sharing no map with v.
func setProfile(v catalog.Variant, class string, p catalog.Profile) catalog.Variant {
	profiles := make(map[string]catalog.Profile, len(v.Profiles)+1)
	for c, q := range v.Profiles {
		profiles[c] = q
	}
	profiles[class] = p
	v.Profiles = profiles
	return v
}

func checkClass(class string) error {
	if class == "" {
		return fmt.Errorf("%w: hardware class is empty", ErrInvalid)
	}
	return nil
}

// CheckInputContract reports, wrapped in ErrConflict, how proposed differs
// from the stored use case: every architecture of a use case must meet the
// same tensor contract position by position (datatypes and shapes apart
// from the batch dimension) and produce the same number of classes. Tensor
// names and a fixed batch dimension may differ.
func CheckInputContract(stored, proposed catalog.UseCase) error {
	if err := stored.Compatible(proposed.Contract); err != nil {
		return fmt.Errorf("%w: use case %s: %v", ErrConflict, stored.ID(), err)
	}
	if stored.Classes != proposed.Classes {
		return fmt.Errorf("%w: use case %s has %d classes, but this architecture has %d", ErrConflict, stored.ID(), stored.Classes, proposed.Classes)
	}
	return nil
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
	if len(v.Profiles) > 0 {
		profiles := make(map[string]catalog.Profile, len(v.Profiles))
		for c, p := range v.Profiles {
			p.ProfiledAt = p.ProfiledAt.UTC()
			profiles[c] = p
		}
		v.Profiles = profiles
	}
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

// newIdentity makes a store identity.
func newIdentity() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
