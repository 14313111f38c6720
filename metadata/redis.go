package metadata

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/redis/go-redis/v9"

	"github.com/infaas/infaas/catalog"
)

// DefaultKeyPrefix starts every key a RedisStore writes.
const DefaultKeyPrefix = "infaas:"

// maxTxAttempts bounds the optimistic retries of one WATCH/MULTI/EXEC
// transaction; each failed attempt means another writer committed first.
const maxTxAttempts = 100

// RedisStore is a Store in a Redis server, shared by every infaas process
// that points at it. Keys, under the prefix:
//
//	archs                  hash  name → Architecture JSON (pending and ready)
//	variants               hash  name → Variant JSON
//	use_cases              hash  "task/dataset" → UseCase JSON
//	arch_variants:<arch>   set   names of the architecture's variants
//	use_case_archs:<id>    set   names of the ready architectures of a use case
//
// Every write changes the archs hash, so a transaction that WATCHes it
// (together with variants and use_cases, to keep that property from being
// load-bearing) sees any concurrent write and retries. Multi-record writes
// are WATCH, reads, MULTI, writes, EXEC; multi-step reads are WATCH, reads,
// then an EXEC that confirms nothing changed in between.
type RedisStore struct {
	client *redis.Client
	prefix string
	where  string // the URL without its password, for messages

	archs, variants, useCases string
}

var _ Store = (*RedisStore)(nil)

// RedisOption configures OpenRedis.
type RedisOption func(*RedisStore)

// WithKeyPrefix replaces DefaultKeyPrefix, so that several installations (or
// tests) can share one Redis database.
func WithKeyPrefix(prefix string) RedisOption {
	return func(s *RedisStore) { s.prefix = prefix }
}

// OpenRedis connects to the Redis server at rawURL
// (redis://[user:password@]host:port/db, rediss:// for TLS) and checks that
// it answers.
func OpenRedis(ctx context.Context, rawURL string, opts ...RedisOption) (*RedisStore, error) {
	where := redactURL(rawURL)
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open metadata store %s: %w", where, err)
	}
	s := &RedisStore{prefix: DefaultKeyPrefix, where: where}
	for _, o := range opts {
		o(s)
	}
	s.archs = s.prefix + "archs"
	s.variants = s.prefix + "variants"
	s.useCases = s.prefix + "use_cases"
	s.client = redis.NewClient(opt)
	if err := s.client.Ping(ctx).Err(); err != nil {
		_ = s.client.Close()
		return nil, fmt.Errorf("open metadata store %s: is the Redis server running and reachable? %w", where, err)
	}
	return s, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable Redis URL>"
	}
	return u.Redacted()
}

// Prefix is the key prefix the store writes under.
func (s *RedisStore) Prefix() string { return s.prefix }

// Close closes the connections to Redis.
func (s *RedisStore) Close() error {
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("close metadata store %s: %w", s.where, err)
	}
	return nil
}

func (s *RedisStore) archVariantsKey(arch string) string { return s.prefix + "arch_variants:" + arch }
func (s *RedisStore) useCaseArchsKey(id string) string   { return s.prefix + "use_case_archs:" + id }

// watch runs fn with the store's hashes WATCHed, retrying while another
// writer invalidates the transaction fn ends with.
func (s *RedisStore) watch(ctx context.Context, fn func(tx *redis.Tx) error) error {
	for range maxTxAttempts {
		err := s.client.Watch(ctx, fn, s.archs, s.variants, s.useCases)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts, concurrent writers kept changing the store: %w", maxTxAttempts, redis.TxFailedErr)
}

// readConsistent runs the reads in fn as one snapshot: if anything changed
// while they ran, the closing EXEC fails and they run again.
func (s *RedisStore) readConsistent(ctx context.Context, fn func(tx *redis.Tx) error) error {
	return s.watch(ctx, func(tx *redis.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Ping(ctx)
			return nil
		})
		return err
	})
}

// getArch reads one architecture through c (the client or a transaction).
func (s *RedisStore) getArch(ctx context.Context, c redis.Cmdable, name string) (catalog.Architecture, error) {
	enc, err := c.HGet(ctx, s.archs, name).Bytes()
	if errors.Is(err, redis.Nil) {
		return catalog.Architecture{}, fmt.Errorf("architecture %w", ErrNotFound)
	}
	if err != nil {
		return catalog.Architecture{}, err
	}
	return decodeArch(name, enc)
}

// BeginRegistration implements Store.
func (s *RedisStore) BeginRegistration(ctx context.Context, arch catalog.Architecture) error {
	err := func() error {
		if err := checkBegin(arch); err != nil {
			return err
		}
		enc, err := encodeArch(arch)
		if err != nil {
			return err
		}
		created, err := s.client.HSetNX(ctx, s.archs, arch.Name, enc).Result()
		if err != nil {
			return err
		}
		if !created {
			return fmt.Errorf("architecture %w", ErrExists)
		}
		return nil
	}()
	if err != nil {
		return fmt.Errorf("begin registration %s: %w", arch.Name, err)
	}
	return nil
}

// CommitRegistration implements Store.
func (s *RedisStore) CommitRegistration(ctx context.Context, arch catalog.Architecture, uc catalog.UseCase, variants []catalog.Variant) error {
	if err := s.commit(ctx, arch, uc, variants); err != nil {
		return fmt.Errorf("commit registration %s: %w", arch.Name, err)
	}
	return nil
}

func (s *RedisStore) commit(ctx context.Context, arch catalog.Architecture, uc catalog.UseCase, variants []catalog.Variant) error {
	if err := checkCommit(arch, uc, variants); err != nil {
		return err
	}
	archEnc, err := encodeArch(readyCopy(arch))
	if err != nil {
		return err
	}
	ucEnc, err := encodeUseCase(uc)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(variants))
	pairs := make([]any, 0, 2*len(variants))
	for _, v := range variants {
		enc, err := encodeVariant(v)
		if err != nil {
			return err
		}
		names = append(names, v.Name)
		pairs = append(pairs, v.Name, enc)
	}
	return s.watch(ctx, func(tx *redis.Tx) error {
		prev, err := s.getArch(ctx, tx, arch.Name)
		if err != nil {
			return err
		}
		if prev.State != catalog.StatePending {
			return fmt.Errorf("architecture is %s, not pending: %w", prev.State, ErrConflict)
		}
		createUC := false
		switch stored, err := tx.HGet(ctx, s.useCases, uc.ID()).Bytes(); {
		case errors.Is(err, redis.Nil):
			createUC = true
		case err != nil:
			return err
		default:
			have, err := decodeUseCase(uc.ID(), stored)
			if err != nil {
				return err
			}
			if err := CheckInputContract(have, uc); err != nil {
				return err
			}
		}
		if len(names) > 0 {
			taken, err := tx.HMGet(ctx, s.variants, names...).Result()
			if err != nil {
				return err
			}
			for i, t := range taken {
				if t != nil {
					return fmt.Errorf("variant %s %w", names[i], ErrExists)
				}
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.archs, arch.Name, archEnc)
			if createUC {
				p.HSet(ctx, s.useCases, uc.ID(), ucEnc)
			}
			p.SAdd(ctx, s.useCaseArchsKey(uc.ID()), arch.Name)
			if len(names) > 0 {
				p.HSet(ctx, s.variants, pairs...)
				p.SAdd(ctx, s.archVariantsKey(arch.Name), toAny(names)...)
			}
			return nil
		})
		return err
	})
}

// AbortRegistration implements Store.
func (s *RedisStore) AbortRegistration(ctx context.Context, name string) error {
	err := s.watch(ctx, func(tx *redis.Tx) error {
		a, err := s.getArch(ctx, tx, name)
		if err != nil {
			return err
		}
		if a.State != catalog.StatePending {
			return fmt.Errorf("architecture is %s; delete it instead: %w", a.State, ErrConflict)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, s.archs, name)
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("abort registration %s: %w", name, err)
	}
	return nil
}

// Pending implements Store.
func (s *RedisStore) Pending(ctx context.Context) ([]catalog.Architecture, error) {
	out, err := s.archsInState(ctx, catalog.StatePending)
	if err != nil {
		return nil, fmt.Errorf("list pending architectures: %w", err)
	}
	return out, nil
}

// Architectures implements Store.
func (s *RedisStore) Architectures(ctx context.Context) ([]catalog.Architecture, error) {
	out, err := s.archsInState(ctx, catalog.StateReady)
	if err != nil {
		return nil, fmt.Errorf("list architectures: %w", err)
	}
	return out, nil
}

func (s *RedisStore) archsInState(ctx context.Context, state string) ([]catalog.Architecture, error) {
	all, err := s.client.HGetAll(ctx, s.archs).Result()
	if err != nil {
		return nil, err
	}
	out := []catalog.Architecture{}
	for name, enc := range all {
		a, err := decodeArch(name, []byte(enc))
		if err != nil {
			return nil, err
		}
		if a.State == state {
			out = append(out, a)
		}
	}
	sortArchs(out)
	return out, nil
}

// Architecture implements Store.
func (s *RedisStore) Architecture(ctx context.Context, name string) (catalog.Architecture, error) {
	a, err := s.getArch(ctx, s.client, name)
	if err != nil {
		return catalog.Architecture{}, fmt.Errorf("get architecture %s: %w", name, err)
	}
	return a, nil
}

// Variants implements Store.
func (s *RedisStore) Variants(ctx context.Context, arch string) ([]catalog.Variant, error) {
	var names []string
	var encs []any
	err := s.readConsistent(ctx, func(tx *redis.Tx) error {
		exists, err := tx.HExists(ctx, s.archs, arch).Result()
		if err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("architecture %w", ErrNotFound)
		}
		names, err = tx.SMembers(ctx, s.archVariantsKey(arch)).Result()
		if err != nil || len(names) == 0 {
			encs = nil
			return err
		}
		encs, err = tx.HMGet(ctx, s.variants, names...).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list variants of %s: %w", arch, err)
	}
	out := make([]catalog.Variant, 0, len(encs))
	for i, e := range encs {
		enc, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("list variants of %s: variant %s is indexed but missing", arch, names[i])
		}
		v, err := decodeVariant(names[i], []byte(enc))
		if err != nil {
			return nil, fmt.Errorf("list variants of %s: %w", arch, err)
		}
		out = append(out, v)
	}
	sortVariants(out)
	return out, nil
}

// Variant implements Store.
func (s *RedisStore) Variant(ctx context.Context, name string) (catalog.Variant, error) {
	v, err := func() (catalog.Variant, error) {
		enc, err := s.client.HGet(ctx, s.variants, name).Bytes()
		if errors.Is(err, redis.Nil) {
			return catalog.Variant{}, fmt.Errorf("variant %w", ErrNotFound)
		}
		if err != nil {
			return catalog.Variant{}, err
		}
		return decodeVariant(name, enc)
	}()
	if err != nil {
		return catalog.Variant{}, fmt.Errorf("get variant %s: %w", name, err)
	}
	return v, nil
}

// AllVariants implements Store.
func (s *RedisStore) AllVariants(ctx context.Context) ([]catalog.Variant, error) {
	all, err := s.client.HGetAll(ctx, s.variants).Result()
	if err != nil {
		return nil, fmt.Errorf("list all variants: %w", err)
	}
	out, err := decodeVariants(all)
	if err != nil {
		return nil, fmt.Errorf("list all variants: %w", err)
	}
	return out, nil
}

func decodeVariants(all map[string]string) ([]catalog.Variant, error) {
	out := make([]catalog.Variant, 0, len(all))
	for name, enc := range all {
		v, err := decodeVariant(name, []byte(enc))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sortVariants(out)
	return out, nil
}

// UseCase implements Store.
func (s *RedisStore) UseCase(ctx context.Context, id string) (catalog.UseCase, error) {
	u, err := func() (catalog.UseCase, error) {
		enc, err := s.client.HGet(ctx, s.useCases, id).Bytes()
		if errors.Is(err, redis.Nil) {
			return catalog.UseCase{}, fmt.Errorf("use case %w", ErrNotFound)
		}
		if err != nil {
			return catalog.UseCase{}, err
		}
		return decodeUseCase(id, enc)
	}()
	if err != nil {
		return catalog.UseCase{}, fmt.Errorf("get use case %s: %w", id, err)
	}
	return u, nil
}

// UseCases implements Store.
func (s *RedisStore) UseCases(ctx context.Context) ([]catalog.UseCase, error) {
	all, err := s.client.HGetAll(ctx, s.useCases).Result()
	if err != nil {
		return nil, fmt.Errorf("list use cases: %w", err)
	}
	out := make([]catalog.UseCase, 0, len(all))
	for id, enc := range all {
		u, err := decodeUseCase(id, []byte(enc))
		if err != nil {
			return nil, fmt.Errorf("list use cases: %w", err)
		}
		out = append(out, u)
	}
	sortUseCases(out)
	return out, nil
}

// DeleteArchitecture implements Store.
func (s *RedisStore) DeleteArchitecture(ctx context.Context, name string) error {
	err := s.watch(ctx, func(tx *redis.Tx) error {
		a, err := s.getArch(ctx, tx, name)
		if err != nil {
			return err
		}
		if a.State != catalog.StateReady {
			return fmt.Errorf("architecture is %s; abort its registration instead: %w", a.State, ErrConflict)
		}
		// Both sets are written only together with the archs hash, which
		// is watched, so they cannot change unseen.
		ucArchs := s.useCaseArchsKey(a.UseCaseID())
		names, err := tx.SMembers(ctx, s.archVariantsKey(name)).Result()
		if err != nil {
			return err
		}
		siblings, err := tx.SMembers(ctx, ucArchs).Result()
		if err != nil {
			return err
		}
		lastOfUseCase := true
		for _, o := range siblings {
			if o != name {
				lastOfUseCase = false
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, s.archs, name)
			if len(names) > 0 {
				p.HDel(ctx, s.variants, names...)
			}
			p.Del(ctx, s.archVariantsKey(name))
			p.SRem(ctx, ucArchs, name)
			if lastOfUseCase {
				p.HDel(ctx, s.useCases, a.UseCaseID())
			}
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete architecture %s: %w", name, err)
	}
	return nil
}

// Digests implements Store.
func (s *RedisStore) Digests(ctx context.Context) (map[string]struct{}, error) {
	var archs, variants *redis.MapStringStringCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		archs = p.HGetAll(ctx, s.archs)
		variants = p.HGetAll(ctx, s.variants)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list digests: %w", err)
	}
	set := map[string]struct{}{}
	for name, enc := range archs.Val() {
		a, err := decodeArch(name, []byte(enc))
		if err != nil {
			return nil, fmt.Errorf("list digests: %w", err)
		}
		addDigest(set, a.ModelDigest)
	}
	vs, err := decodeVariants(variants.Val())
	if err != nil {
		return nil, fmt.Errorf("list digests: %w", err)
	}
	for _, v := range vs {
		addDigest(set, v.FileDigest)
	}
	return set, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
