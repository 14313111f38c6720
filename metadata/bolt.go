package metadata

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/semaphore"

	"github.com/infaas/infaas/catalog"
)

// Bucket layout. Keys are names (use-case IDs for use cases), values JSON.
// arch_variants holds one nested bucket per ready architecture whose keys
// are the names of its variants, so listing them needs no scan. leases
// holds the lease (owner, expiry, added digests) of each pending
// architecture, keyed by its name.
var (
	bucketArchs        = []byte("architectures")
	bucketVariants     = []byte("variants")
	bucketArchVariants = []byte("arch_variants")
	bucketUseCases     = []byte("use_cases")
	bucketLeases       = []byte("leases")
	bucketMeta         = []byte("meta") // identity
)

// blobLockWeight is the blob lock's capacity: LockBlobs takes all of it,
// each write that adds references one unit.
const blobLockWeight = math.MaxInt32

// lockTimeout bounds the wait for the file lock held by another process.
const lockTimeout = 2 * time.Second

// BoltStore is a Store in one bbolt file, for a single infaas process.
// bbolt serialises writers, so each method is one transaction. Since one
// process holds the file, leases are judged by this process's clock (and
// those found when the file is opened have expired: their holder exited),
// the blob lock is an in-process lock and Changes an in-process broadcast.
type BoltStore struct {
	db   *bolt.DB
	path string
	now  func() time.Time

	blobs   *semaphore.Weighted
	changes broadcaster
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens or creates the bbolt file at path (its directory must
// exist). Only one process may hold the file open at a time.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open metadata store %s: file is locked; is another infaas process using this data directory? %w", path, err)
		}
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketArchs, bucketVariants, bucketArchVariants, bucketUseCases, bucketLeases, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return expireLeases(tx.Bucket(bucketLeases))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}
	return &BoltStore{db: db, path: path, now: time.Now, blobs: semaphore.NewWeighted(blobLockWeight)}, nil
}

// expireLeases ends every lease found when the file is opened: only one
// process can hold the file, so whoever took them has exited, and their
// registrations are for Recover to remove at once. Owners and digests stay.
func expireLeases(b *bolt.Bucket) error {
	expired := map[string][]byte{}
	err := b.ForEach(func(k, v []byte) error {
		l, err := decodeLease(string(k), v)
		if err != nil {
			return err
		}
		l.Until = time.Time{}
		enc, err := encodeLease(string(k), l)
		if err != nil {
			return err
		}
		expired[string(k)] = enc
		return nil
	})
	if err != nil {
		return err
	}
	for k, v := range expired {
		if err := b.Put([]byte(k), v); err != nil {
			return fmt.Errorf("expire lease of %s: %w", k, err)
		}
	}
	return nil
}

// Path is the file the store was opened from.
func (s *BoltStore) Path() string { return s.path }

// Close closes the file and the channels Changes returned.
func (s *BoltStore) Close() error {
	s.changes.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close metadata store %s: %w", s.path, err)
	}
	return nil
}

// boltTx holds the store's top-level buckets inside one transaction.
type boltTx struct {
	archs, variants, archVariants, useCases, leases *bolt.Bucket
}

func (s *BoltStore) view(ctx context.Context, fn func(b boltTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error { return fn(buckets(tx)) })
}

// update runs fn in a read-write transaction; bbolt rolls it back if fn
// fails, which is what makes every write all-or-nothing.
func (s *BoltStore) update(ctx context.Context, fn func(b boltTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return fn(buckets(tx)) })
}

// updateReferencing is update for a write that can add blob references: it
// waits while LockBlobs is held.
func (s *BoltStore) updateReferencing(ctx context.Context, fn func(b boltTx) error) error {
	if err := s.blobs.Acquire(ctx, 1); err != nil {
		return err
	}
	defer s.blobs.Release(1)
	return s.update(ctx, fn)
}

func buckets(tx *bolt.Tx) boltTx {
	return boltTx{
		archs:        tx.Bucket(bucketArchs),
		variants:     tx.Bucket(bucketVariants),
		archVariants: tx.Bucket(bucketArchVariants),
		useCases:     tx.Bucket(bucketUseCases),
		leases:       tx.Bucket(bucketLeases),
	}
}

func (b boltTx) arch(name string) (catalog.Architecture, error) {
	v := b.archs.Get([]byte(name))
	if v == nil {
		return catalog.Architecture{}, fmt.Errorf("architecture %w", ErrNotFound)
	}
	return decodeArch(name, v)
}

func (b boltTx) eachArch(fn func(a catalog.Architecture) error) error {
	return b.archs.ForEach(func(k, v []byte) error {
		a, err := decodeArch(string(k), v)
		if err != nil {
			return err
		}
		return fn(a)
	})
}

func (b boltTx) put(bucket *bolt.Bucket, key string, value []byte) error {
	if err := bucket.Put([]byte(key), value); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// lease returns the lease of pending architecture name, or the zero lease
// (no owner, expired) if none is stored.
func (b boltTx) lease(name string) (lease, error) {
	v := b.leases.Get([]byte(name))
	if v == nil {
		return lease{}, nil
	}
	return decodeLease(name, v)
}

func (b boltTx) putLease(name string, l lease) error {
	enc, err := encodeLease(name, l)
	if err != nil {
		return err
	}
	return b.put(b.leases, name, enc)
}

// pending returns the pending architecture name and its lease.
func (b boltTx) pending(name string) (catalog.Architecture, lease, error) {
	a, err := b.arch(name)
	if err != nil {
		return a, lease{}, err
	}
	if a.State != catalog.StatePending {
		return a, lease{}, fmt.Errorf("architecture is %s, not pending: %w", a.State, ErrConflict)
	}
	l, err := b.lease(name)
	return a, l, err
}

// BeginRegistration implements Store.
func (s *BoltStore) BeginRegistration(ctx context.Context, arch catalog.Architecture, owner string, ttl time.Duration) error {
	if err := errors.Join(checkBegin(arch), checkLease(owner, ttl)); err != nil {
		return fmt.Errorf("begin registration %s: %w", arch.Name, err)
	}
	err := s.updateReferencing(ctx, func(b boltTx) error {
		if b.archs.Get([]byte(arch.Name)) != nil {
			return fmt.Errorf("architecture %w", ErrExists)
		}
		enc, err := encodeArch(arch)
		if err != nil {
			return err
		}
		if err := b.put(b.archs, arch.Name, enc); err != nil {
			return err
		}
		return b.putLease(arch.Name, newLease(owner, s.now(), ttl))
	})
	if err != nil {
		return fmt.Errorf("begin registration %s: %w", arch.Name, err)
	}
	return nil
}

// RenewLease implements Store.
func (s *BoltStore) RenewLease(ctx context.Context, name, owner string, ttl time.Duration) error {
	err := checkLease(owner, ttl)
	if err == nil {
		err = s.update(ctx, func(b boltTx) error {
			_, l, err := b.pending(name)
			if err != nil {
				return err
			}
			now := s.now()
			if err := checkHolder(l, owner, now); err != nil {
				return err
			}
			renewed := newLease(owner, now, ttl)
			renewed.Digests = l.Digests
			return b.putLease(name, renewed)
		})
	}
	if err != nil {
		return fmt.Errorf("renew lease of %s: %w", name, err)
	}
	return nil
}

// AddPendingDigests implements Store.
func (s *BoltStore) AddPendingDigests(ctx context.Context, name, owner string, digests ...string) error {
	err := checkOwner(owner)
	if err == nil {
		err = s.updateReferencing(ctx, func(b boltTx) error {
			_, l, err := b.pending(name)
			if err != nil {
				return err
			}
			if err := checkHolder(l, owner, s.now()); err != nil {
				return err
			}
			return b.putLease(name, l.addDigests(digests))
		})
	}
	if err != nil {
		return fmt.Errorf("add digests to registration %s: %w", name, err)
	}
	return nil
}

// CommitRegistration implements Store.
func (s *BoltStore) CommitRegistration(ctx context.Context, arch catalog.Architecture, owner string, uc catalog.UseCase, variants []catalog.Variant) error {
	if err := errors.Join(checkCommit(arch, uc, variants), checkOwner(owner)); err != nil {
		return fmt.Errorf("commit registration %s: %w", arch.Name, err)
	}
	err := s.updateReferencing(ctx, func(b boltTx) error {
		_, l, err := b.pending(arch.Name)
		if err != nil {
			return err
		}
		if err := checkHolder(l, owner, s.now()); err != nil {
			return err
		}
		if stored := b.useCases.Get([]byte(uc.ID())); stored != nil {
			have, err := decodeUseCase(uc.ID(), stored)
			if err != nil {
				return err
			}
			if err := CheckInputContract(have, uc); err != nil {
				return err
			}
		} else {
			enc, err := encodeUseCase(uc)
			if err != nil {
				return err
			}
			if err := b.put(b.useCases, uc.ID(), enc); err != nil {
				return err
			}
		}
		enc, err := encodeArch(readyCopy(arch))
		if err != nil {
			return err
		}
		if err := b.put(b.archs, arch.Name, enc); err != nil {
			return err
		}
		if err := b.leases.Delete([]byte(arch.Name)); err != nil {
			return err
		}
		names, err := b.archVariants.CreateBucketIfNotExists([]byte(arch.Name))
		if err != nil {
			return fmt.Errorf("create variant index: %w", err)
		}
		for _, v := range variants {
			if b.variants.Get([]byte(v.Name)) != nil {
				return fmt.Errorf("variant %s %w", v.Name, ErrExists)
			}
			enc, err := encodeVariant(v)
			if err != nil {
				return err
			}
			if err := b.put(b.variants, v.Name, enc); err != nil {
				return err
			}
			if err := b.put(names, v.Name, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit registration %s: %w", arch.Name, err)
	}
	s.changes.notify()
	return nil
}

// AbortRegistration implements Store.
func (s *BoltStore) AbortRegistration(ctx context.Context, name, owner string) error {
	err := checkOwner(owner)
	if err == nil {
		err = s.update(ctx, func(b boltTx) error {
			a, err := b.arch(name)
			if err != nil {
				return err
			}
			if a.State != catalog.StatePending {
				return fmt.Errorf("architecture is %s; delete it instead: %w", a.State, ErrConflict)
			}
			l, err := b.lease(name)
			if err != nil {
				return err
			}
			if err := checkAbort(l, owner, s.now()); err != nil {
				return err
			}
			if err := b.leases.Delete([]byte(name)); err != nil {
				return err
			}
			return b.archs.Delete([]byte(name))
		})
	}
	if err != nil {
		return fmt.Errorf("abort registration %s: %w", name, err)
	}
	s.changes.notify()
	return nil
}

// Pending implements Store.
func (s *BoltStore) Pending(ctx context.Context) ([]PendingRegistration, error) {
	out := []PendingRegistration{}
	err := s.view(ctx, func(b boltTx) error {
		now := s.now()
		return b.eachArch(func(a catalog.Architecture) error {
			if a.State != catalog.StatePending {
				return nil
			}
			l, err := b.lease(a.Name)
			if err != nil {
				return err
			}
			out = append(out, pendingOf(a, l, now))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pending architectures: %w", err)
	}
	sortPending(out)
	return out, nil
}

// Architectures implements Store.
func (s *BoltStore) Architectures(ctx context.Context) ([]catalog.Architecture, error) {
	out, err := s.archsInState(ctx, catalog.StateReady)
	if err != nil {
		return nil, fmt.Errorf("list architectures: %w", err)
	}
	return out, nil
}

func (s *BoltStore) archsInState(ctx context.Context, state string) ([]catalog.Architecture, error) {
	out := []catalog.Architecture{}
	err := s.view(ctx, func(b boltTx) error {
		return b.eachArch(func(a catalog.Architecture) error {
			if a.State == state {
				out = append(out, a)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortArchs(out)
	return out, nil
}

// Architecture implements Store.
func (s *BoltStore) Architecture(ctx context.Context, name string) (catalog.Architecture, error) {
	var a catalog.Architecture
	err := s.view(ctx, func(b boltTx) error {
		var err error
		a, err = b.arch(name)
		return err
	})
	if err != nil {
		return catalog.Architecture{}, fmt.Errorf("get architecture %s: %w", name, err)
	}
	return a, nil
}

// Variants implements Store.
func (s *BoltStore) Variants(ctx context.Context, arch string) ([]catalog.Variant, error) {
	out := []catalog.Variant{}
	err := s.view(ctx, func(b boltTx) error {
		if _, err := b.arch(arch); err != nil {
			return err
		}
		names := b.archVariants.Bucket([]byte(arch))
		if names == nil {
			return nil // pending: no variants yet
		}
		return names.ForEach(func(k, _ []byte) error {
			enc := b.variants.Get(k)
			if enc == nil {
				return fmt.Errorf("variant %s is indexed but missing", k)
			}
			v, err := decodeVariant(string(k), enc)
			if err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list variants of %s: %w", arch, err)
	}
	sortVariants(out)
	return out, nil
}

// Variant implements Store.
func (s *BoltStore) Variant(ctx context.Context, name string) (catalog.Variant, error) {
	var v catalog.Variant
	err := s.view(ctx, func(b boltTx) error {
		enc := b.variants.Get([]byte(name))
		if enc == nil {
			return fmt.Errorf("variant %w", ErrNotFound)
		}
		var err error
		v, err = decodeVariant(name, enc)
		return err
	})
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("get variant %s: %w", name, err)
	}
	return v, nil
}

// AllVariants implements Store.
func (s *BoltStore) AllVariants(ctx context.Context) ([]catalog.Variant, error) {
	out := []catalog.Variant{}
	err := s.view(ctx, func(b boltTx) error {
		return b.variants.ForEach(func(k, enc []byte) error {
			v, err := decodeVariant(string(k), enc)
			if err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list all variants: %w", err)
	}
	sortVariants(out)
	return out, nil
}

// UseCase implements Store.
func (s *BoltStore) UseCase(ctx context.Context, id string) (catalog.UseCase, error) {
	var u catalog.UseCase
	err := s.view(ctx, func(b boltTx) error {
		enc := b.useCases.Get([]byte(id))
		if enc == nil {
			return fmt.Errorf("use case %w", ErrNotFound)
		}
		var err error
		u, err = decodeUseCase(id, enc)
		return err
	})
	if err != nil {
		return catalog.UseCase{}, fmt.Errorf("get use case %s: %w", id, err)
	}
	return u, nil
}

// UseCases implements Store.
func (s *BoltStore) UseCases(ctx context.Context) ([]catalog.UseCase, error) {
	out := []catalog.UseCase{}
	err := s.view(ctx, func(b boltTx) error {
		return b.useCases.ForEach(func(k, enc []byte) error {
			u, err := decodeUseCase(string(k), enc)
			if err != nil {
				return err
			}
			out = append(out, u)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list use cases: %w", err)
	}
	sortUseCases(out)
	return out, nil
}

// DeleteArchitecture implements Store.
func (s *BoltStore) DeleteArchitecture(ctx context.Context, name string) error {
	err := s.update(ctx, func(b boltTx) error {
		a, err := b.arch(name)
		if err != nil {
			return err
		}
		if a.State != catalog.StateReady {
			return fmt.Errorf("architecture is %s; abort its registration instead: %w", a.State, ErrConflict)
		}
		if names := b.archVariants.Bucket([]byte(name)); names != nil {
			err := names.ForEach(func(k, _ []byte) error { return b.variants.Delete(k) })
			if err != nil {
				return fmt.Errorf("delete variants: %w", err)
			}
			if err := b.archVariants.DeleteBucket([]byte(name)); err != nil {
				return fmt.Errorf("delete variant index: %w", err)
			}
		}
		if err := b.archs.Delete([]byte(name)); err != nil {
			return err
		}
		errReferenced := errors.New("referenced")
		err = b.eachArch(func(o catalog.Architecture) error {
			if o.State == catalog.StateReady && o.UseCaseID() == a.UseCaseID() {
				return errReferenced
			}
			return nil
		})
		switch {
		case errors.Is(err, errReferenced):
			return nil
		case err != nil:
			return err
		}
		return b.useCases.Delete([]byte(a.UseCaseID()))
	})
	if err != nil {
		return fmt.Errorf("delete architecture %s: %w", name, err)
	}
	s.changes.notify()
	return nil
}

// SetProfile implements Store.
func (s *BoltStore) SetProfile(ctx context.Context, variant, class string, p catalog.Profile) error {
	err := checkClass(class)
	if err == nil {
		err = s.update(ctx, func(b boltTx) error {
			stored := b.variants.Get([]byte(variant))
			if stored == nil {
				return fmt.Errorf("variant %w", ErrNotFound)
			}
			v, err := decodeVariant(variant, stored)
			if err != nil {
				return err
			}
			enc, err := encodeVariant(setProfile(v, class, p))
			if err != nil {
				return err
			}
			return b.put(b.variants, variant, enc)
		})
	}
	if err != nil {
		return fmt.Errorf("set profile of %s on %s: %w", variant, class, err)
	}
	s.changes.notify()
	return nil
}

// Digests implements Store.
func (s *BoltStore) Digests(ctx context.Context) (map[string]struct{}, error) {
	set := map[string]struct{}{}
	err := s.view(ctx, func(b boltTx) error {
		err := b.eachArch(func(a catalog.Architecture) error {
			addDigest(set, a.ModelDigest)
			return nil
		})
		if err != nil {
			return err
		}
		err = b.leases.ForEach(func(k, enc []byte) error {
			l, err := decodeLease(string(k), enc)
			if err != nil {
				return err
			}
			for _, d := range l.Digests {
				addDigest(set, d)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return b.variants.ForEach(func(k, enc []byte) error {
			v, err := decodeVariant(string(k), enc)
			if err != nil {
				return err
			}
			addDigest(set, v.FileDigest)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list digests: %w", err)
	}
	return set, nil
}

// LockBlobs implements Store with an in-process lock: only this process
// can use the file.
func (s *BoltStore) LockBlobs(ctx context.Context) (context.Context, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("lock blobs: %w", err)
	}
	if err := s.blobs.Acquire(ctx, blobLockWeight); err != nil {
		return nil, nil, fmt.Errorf("lock blobs: %w", err)
	}
	held, cancel := context.WithCancel(ctx)
	release := sync.OnceFunc(func() {
		cancel()
		s.blobs.Release(blobLockWeight)
	})
	return held, release, nil
}

// Changes implements Store with an in-process broadcast.
func (s *BoltStore) Changes(ctx context.Context) (<-chan struct{}, error) {
	ch, err := s.changes.subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch changes: %w", err)
	}
	return ch, nil
}

// Identity returns the store's identity, creating it on first use.
func (s *BoltStore) Identity(context.Context) (string, error) {
	var id string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if v := b.Get([]byte("identity")); v != nil {
			id = string(v)
			return nil
		}
		id = newIdentity()
		return b.Put([]byte("identity"), []byte(id))
	})
	if err != nil {
		return "", fmt.Errorf("store identity: %w", err)
	}
	return id, nil
}
