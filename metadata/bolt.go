package metadata

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/infaas/infaas/catalog"
)

// Bucket layout. Keys are names (use-case IDs for use cases), values JSON.
// arch_variants holds one nested bucket per ready architecture whose keys
// are the names of its variants, so listing them needs no scan.
var (
	bucketArchs        = []byte("architectures")
	bucketVariants     = []byte("variants")
	bucketArchVariants = []byte("arch_variants")
	bucketUseCases     = []byte("use_cases")
)

// lockTimeout bounds the wait for the file lock held by another process.
const lockTimeout = 2 * time.Second

// BoltStore is a Store in one bbolt file, for a single infaas process.
// bbolt serialises writers, so each method is one transaction.
type BoltStore struct {
	db   *bolt.DB
	path string
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
		for _, name := range [][]byte{bucketArchs, bucketVariants, bucketArchVariants, bucketUseCases} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open metadata store %s: %w", path, err)
	}
	return &BoltStore{db: db, path: path}, nil
}

// Path is the file the store was opened from.
func (s *BoltStore) Path() string { return s.path }

// Close closes the file.
func (s *BoltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close metadata store %s: %w", s.path, err)
	}
	return nil
}

// boltTx holds the store's top-level buckets inside one transaction.
type boltTx struct {
	archs, variants, archVariants, useCases *bolt.Bucket
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

func buckets(tx *bolt.Tx) boltTx {
	return boltTx{
		archs:        tx.Bucket(bucketArchs),
		variants:     tx.Bucket(bucketVariants),
		archVariants: tx.Bucket(bucketArchVariants),
		useCases:     tx.Bucket(bucketUseCases),
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

// BeginRegistration implements Store.
func (s *BoltStore) BeginRegistration(ctx context.Context, arch catalog.Architecture) error {
	if err := checkBegin(arch); err != nil {
		return fmt.Errorf("begin registration %s: %w", arch.Name, err)
	}
	err := s.update(ctx, func(b boltTx) error {
		if b.archs.Get([]byte(arch.Name)) != nil {
			return fmt.Errorf("architecture %w", ErrExists)
		}
		enc, err := encodeArch(arch)
		if err != nil {
			return err
		}
		return b.put(b.archs, arch.Name, enc)
	})
	if err != nil {
		return fmt.Errorf("begin registration %s: %w", arch.Name, err)
	}
	return nil
}

// CommitRegistration implements Store.
func (s *BoltStore) CommitRegistration(ctx context.Context, arch catalog.Architecture, uc catalog.UseCase, variants []catalog.Variant) error {
	if err := checkCommit(arch, uc, variants); err != nil {
		return fmt.Errorf("commit registration %s: %w", arch.Name, err)
	}
	err := s.update(ctx, func(b boltTx) error {
		prev, err := b.arch(arch.Name)
		if err != nil {
			return err
		}
		if prev.State != catalog.StatePending {
			return fmt.Errorf("architecture is %s, not pending: %w", prev.State, ErrConflict)
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
	return nil
}

// AbortRegistration implements Store.
func (s *BoltStore) AbortRegistration(ctx context.Context, name string) error {
	err := s.update(ctx, func(b boltTx) error {
		a, err := b.arch(name)
		if err != nil {
			return err
		}
		if a.State != catalog.StatePending {
			return fmt.Errorf("architecture is %s; delete it instead: %w", a.State, ErrConflict)
		}
		return b.archs.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("abort registration %s: %w", name, err)
	}
	return nil
}

// Pending implements Store.
func (s *BoltStore) Pending(ctx context.Context) ([]catalog.Architecture, error) {
	out, err := s.archsInState(ctx, catalog.StatePending)
	if err != nil {
		return nil, fmt.Errorf("list pending architectures: %w", err)
	}
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
