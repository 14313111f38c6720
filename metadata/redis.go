package metadata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/infaas/infaas/catalog"
)

// DefaultKeyPrefix starts every key a RedisStore writes.
const DefaultKeyPrefix = "infaas:"

const (
	// maxTxAttempts bounds the optimistic retries of one WATCH/MULTI/EXEC
	// transaction; each failed attempt means another writer committed first.
	maxTxAttempts = 100
	// blobLockTTL is how long the blob lock outlives a holder that stops
	// renewing it (it renews every third of that).
	blobLockTTL = 30 * time.Second
	// lockPollInterval is how often a caller waiting for the blob lock
	// looks again.
	lockPollInterval = 20 * time.Millisecond
)

// RedisStore is a Store in a Redis server, shared by every infaas process
// that points at it. Keys, under the prefix:
//
//	archs                  hash    name → Architecture JSON (pending and ready)
//	variants               hash    name → Variant JSON
//	use_cases              hash    "task/dataset" → UseCase JSON
//	leases                 hash    name → lease JSON of a pending architecture
//	                               (owner, expiry by the server's TIME, added digests)
//	arch_variants:<arch>   set     names of the architecture's variants
//	use_case_archs:<id>    set     names of the ready architectures of a use case
//	blob_lock              string  the blob lock's holder token, with a PX expiry
//	identity               string  the store's identity (SETNX on first use)
//	unplaced               hash    hardware class → loads no worker had room for,
//	                               pooled for the controller that adds workers
//	                               (UnplacedLog; expires a minute after the last add)
//	changes                channel PUBLISHed inside each transaction that commits,
//	                               aborts or deletes a registration or sets a profile
//
// Every multi-record write is WATCH (archs, variants, use_cases, leases, and
// blob_lock for writes that add blob references), reads, MULTI, writes,
// EXEC, retried when another writer got in first; multi-step reads are
// WATCH, reads, then an EXEC that confirms nothing changed in between.
// Lease expiry is judged by the server's clock (TIME), never the caller's,
// so processes with skewed clocks agree. A failure to reach the server is
// reported wrapped in ErrUnavailable.
type RedisStore struct {
	identity string // key
	client   *redis.Client
	prefix   string
	where    string // the URL without its password, for messages

	archs, variants, useCases, leases, blobLock, changes string

	mu     sync.Mutex
	subs   map[*redis.PubSub]struct{} // Changes subscriptions, closed by Close
	closed bool
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
	s := &RedisStore{prefix: DefaultKeyPrefix, where: where, subs: map[*redis.PubSub]struct{}{}}
	for _, o := range opts {
		o(s)
	}
	s.archs = s.prefix + "archs"
	s.variants = s.prefix + "variants"
	s.useCases = s.prefix + "use_cases"
	s.leases = s.prefix + "leases"
	s.blobLock = s.prefix + "blob_lock"
	s.changes = s.prefix + "changes"
	s.identity = s.prefix + "identity"
	s.client = redis.NewClient(opt)
	if err := s.client.Ping(ctx).Err(); err != nil {
		_ = s.client.Close()
		return nil, fmt.Errorf("open metadata store %s: is the Redis server running and reachable? %w", where, s.classify(ctx, err))
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

// classify wraps err in ErrUnavailable when it says the server could not be
// reached, keeping the original message; other errors (a canceled ctx, a
// caller bug, a conflict) come back unchanged.
func (s *RedisStore) classify(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrUnavailable) || !unreachable(err) {
		return err
	}
	return fmt.Errorf("%w (%s): %w", ErrUnavailable, s.where, err)
}

// unreachable reports whether err is go-redis failing to talk to the
// server: a network error or timeout, a connection closed or refused under
// it, no free connection in the pool, or a server not ready to serve.
func unreachable(err error) bool {
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return true
	}
	msg := err.Error()
	for _, p := range []string{"LOADING ", "MASTERDOWN ", "TRYAGAIN ", "CLUSTERDOWN "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// Prefix is the key prefix the store writes under.
func (s *RedisStore) Prefix() string { return s.prefix }

// Close closes the connections to Redis and the channels Changes returned.
func (s *RedisStore) Close() error {
	s.mu.Lock()
	s.closed = true
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	for ps := range subs {
		_ = ps.Close()
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("close metadata store %s: %w", s.where, err)
	}
	return nil
}

func (s *RedisStore) archVariantsKey(arch string) string { return s.prefix + "arch_variants:" + arch }
func (s *RedisStore) useCaseArchsKey(id string) string   { return s.prefix + "use_case_archs:" + id }

// watch runs fn with the store's hashes (and extra) WATCHed, retrying while
// another writer invalidates the transaction fn ends with.
func (s *RedisStore) watch(ctx context.Context, fn func(tx *redis.Tx) error, extra ...string) error {
	keys := append([]string{s.archs, s.variants, s.useCases, s.leases}, extra...)
	for range maxTxAttempts {
		err := s.client.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts, concurrent writers kept changing the store: %w", maxTxAttempts, redis.TxFailedErr)
}

// errBlobsLocked: another caller holds the blob lock.
var errBlobsLocked = errors.New("the blob lock is held")

// watchReferencing is watch for a write that can add blob references: fn
// runs only while nobody holds the blob lock (the lock key is watched, so
// a collector taking it before EXEC makes the transaction retry), and the
// call waits for the lock while it is held.
func (s *RedisStore) watchReferencing(ctx context.Context, fn func(tx *redis.Tx) error) error {
	for {
		err := s.watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Exists(ctx, s.blobLock).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return errBlobsLocked
			}
			return fn(tx)
		}, s.blobLock)
		if !errors.Is(err, errBlobsLocked) {
			return err
		}
		if err := waitCtx(ctx, lockPollInterval); err != nil {
			return fmt.Errorf("waiting for the blob lock: %w", err)
		}
	}
}

// waitCtx waits for d or until ctx ends.
func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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

// getLease reads the lease of pending architecture name, or the zero lease
// (no owner, expired) if none is stored.
func (s *RedisStore) getLease(ctx context.Context, c redis.Cmdable, name string) (lease, error) {
	enc, err := c.HGet(ctx, s.leases, name).Bytes()
	if errors.Is(err, redis.Nil) {
		return lease{}, nil
	}
	if err != nil {
		return lease{}, err
	}
	return decodeLease(name, enc)
}

// getPending reads pending architecture name, its lease and the server's
// clock inside a transaction.
func (s *RedisStore) getPending(ctx context.Context, tx *redis.Tx, name string) (catalog.Architecture, lease, time.Time, error) {
	a, err := s.getArch(ctx, tx, name)
	if err != nil {
		return a, lease{}, time.Time{}, err
	}
	if a.State != catalog.StatePending {
		return a, lease{}, time.Time{}, fmt.Errorf("architecture is %s, not pending: %w", a.State, ErrConflict)
	}
	l, err := s.getLease(ctx, tx, name)
	if err != nil {
		return a, lease{}, time.Time{}, err
	}
	now, err := tx.Time(ctx).Result()
	if err != nil {
		return a, lease{}, time.Time{}, err
	}
	return a, l, now.UTC(), nil
}

// BeginRegistration implements Store.
func (s *RedisStore) BeginRegistration(ctx context.Context, arch catalog.Architecture, owner string, ttl time.Duration) error {
	err := func() error {
		if err := errors.Join(checkBegin(arch), checkLease(owner, ttl)); err != nil {
			return err
		}
		enc, err := encodeArch(arch)
		if err != nil {
			return err
		}
		return s.watchReferencing(ctx, func(tx *redis.Tx) error {
			exists, err := tx.HExists(ctx, s.archs, arch.Name).Result()
			if err != nil {
				return err
			}
			if exists {
				return fmt.Errorf("architecture %w", ErrExists)
			}
			now, err := tx.Time(ctx).Result()
			if err != nil {
				return err
			}
			leaseEnc, err := encodeLease(arch.Name, newLease(owner, now, ttl))
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, s.archs, arch.Name, enc)
				p.HSet(ctx, s.leases, arch.Name, leaseEnc)
				return nil
			})
			return err
		})
	}()
	if err != nil {
		return fmt.Errorf("begin registration %s: %w", arch.Name, s.classify(ctx, err))
	}
	return nil
}

// RenewLease implements Store.
func (s *RedisStore) RenewLease(ctx context.Context, name, owner string, ttl time.Duration) error {
	err := checkLease(owner, ttl)
	if err == nil {
		err = s.watch(ctx, func(tx *redis.Tx) error {
			_, l, now, err := s.getPending(ctx, tx, name)
			if err != nil {
				return err
			}
			if err := checkHolder(l, owner, now); err != nil {
				return err
			}
			renewed := newLease(owner, now, ttl)
			renewed.Digests = l.Digests
			enc, err := encodeLease(name, renewed)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, s.leases, name, enc)
				return nil
			})
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("renew lease of %s: %w", name, s.classify(ctx, err))
	}
	return nil
}

// AddPendingDigests implements Store.
func (s *RedisStore) AddPendingDigests(ctx context.Context, name, owner string, digests ...string) error {
	err := checkOwner(owner)
	if err == nil {
		err = s.watchReferencing(ctx, func(tx *redis.Tx) error {
			_, l, now, err := s.getPending(ctx, tx, name)
			if err != nil {
				return err
			}
			if err := checkHolder(l, owner, now); err != nil {
				return err
			}
			enc, err := encodeLease(name, l.addDigests(digests))
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, s.leases, name, enc)
				return nil
			})
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("add digests to registration %s: %w", name, s.classify(ctx, err))
	}
	return nil
}

// CommitRegistration implements Store.
func (s *RedisStore) CommitRegistration(ctx context.Context, arch catalog.Architecture, owner string, uc catalog.UseCase, variants []catalog.Variant) error {
	if err := s.commit(ctx, arch, owner, uc, variants); err != nil {
		return fmt.Errorf("commit registration %s: %w", arch.Name, s.classify(ctx, err))
	}
	return nil
}

func (s *RedisStore) commit(ctx context.Context, arch catalog.Architecture, owner string, uc catalog.UseCase, variants []catalog.Variant) error {
	if err := errors.Join(checkCommit(arch, uc, variants), checkOwner(owner)); err != nil {
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
	return s.watchReferencing(ctx, func(tx *redis.Tx) error {
		_, l, now, err := s.getPending(ctx, tx, arch.Name)
		if err != nil {
			return err
		}
		if err := checkHolder(l, owner, now); err != nil {
			return err
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
			p.HDel(ctx, s.leases, arch.Name)
			if createUC {
				p.HSet(ctx, s.useCases, uc.ID(), ucEnc)
			}
			p.SAdd(ctx, s.useCaseArchsKey(uc.ID()), arch.Name)
			if len(names) > 0 {
				p.HSet(ctx, s.variants, pairs...)
				p.SAdd(ctx, s.archVariantsKey(arch.Name), toAny(names)...)
			}
			p.Publish(ctx, s.changes, "commit "+arch.Name)
			return nil
		})
		return err
	})
}

// AbortRegistration implements Store.
func (s *RedisStore) AbortRegistration(ctx context.Context, name, owner string) error {
	err := checkOwner(owner)
	if err == nil {
		err = s.watch(ctx, func(tx *redis.Tx) error {
			a, err := s.getArch(ctx, tx, name)
			if err != nil {
				return err
			}
			if a.State != catalog.StatePending {
				return fmt.Errorf("architecture is %s; delete it instead: %w", a.State, ErrConflict)
			}
			l, err := s.getLease(ctx, tx, name)
			if err != nil {
				return err
			}
			now, err := tx.Time(ctx).Result()
			if err != nil {
				return err
			}
			if err := checkAbort(l, owner, now.UTC()); err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HDel(ctx, s.archs, name)
				p.HDel(ctx, s.leases, name)
				p.Publish(ctx, s.changes, "abort "+name)
				return nil
			})
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("abort registration %s: %w", name, s.classify(ctx, err))
	}
	return nil
}

// Pending implements Store.
func (s *RedisStore) Pending(ctx context.Context) ([]PendingRegistration, error) {
	out, err := s.pending(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pending architectures: %w", s.classify(ctx, err))
	}
	return out, nil
}

func (s *RedisStore) pending(ctx context.Context) ([]PendingRegistration, error) {
	var archs, leases *redis.MapStringStringCmd
	var now *redis.TimeCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		archs = p.HGetAll(ctx, s.archs)
		leases = p.HGetAll(ctx, s.leases)
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []PendingRegistration{}
	for name, enc := range archs.Val() {
		a, err := decodeArch(name, []byte(enc))
		if err != nil {
			return nil, err
		}
		if a.State != catalog.StatePending {
			continue
		}
		var l lease
		if enc, ok := leases.Val()[name]; ok {
			if l, err = decodeLease(name, []byte(enc)); err != nil {
				return nil, err
			}
		}
		out = append(out, pendingOf(a, l, now.Val().UTC()))
	}
	sortPending(out)
	return out, nil
}

// Architectures implements Store.
func (s *RedisStore) Architectures(ctx context.Context) ([]catalog.Architecture, error) {
	out, err := s.readyArchs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list architectures: %w", s.classify(ctx, err))
	}
	return out, nil
}

func (s *RedisStore) readyArchs(ctx context.Context) ([]catalog.Architecture, error) {
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
		if a.State == catalog.StateReady {
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
		return catalog.Architecture{}, fmt.Errorf("get architecture %s: %w", name, s.classify(ctx, err))
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
		return nil, fmt.Errorf("list variants of %s: %w", arch, s.classify(ctx, err))
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
		return catalog.Variant{}, fmt.Errorf("get variant %s: %w", name, s.classify(ctx, err))
	}
	return v, nil
}

// AllVariants implements Store.
func (s *RedisStore) AllVariants(ctx context.Context) ([]catalog.Variant, error) {
	all, err := s.client.HGetAll(ctx, s.variants).Result()
	if err != nil {
		return nil, fmt.Errorf("list all variants: %w", s.classify(ctx, err))
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
		return catalog.UseCase{}, fmt.Errorf("get use case %s: %w", id, s.classify(ctx, err))
	}
	return u, nil
}

// UseCases implements Store.
func (s *RedisStore) UseCases(ctx context.Context) ([]catalog.UseCase, error) {
	all, err := s.client.HGetAll(ctx, s.useCases).Result()
	if err != nil {
		return nil, fmt.Errorf("list use cases: %w", s.classify(ctx, err))
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
			p.Publish(ctx, s.changes, "delete "+name)
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete architecture %s: %w", name, s.classify(ctx, err))
	}
	return nil
}

// SetProfile implements Store.
func (s *RedisStore) SetProfile(ctx context.Context, variant, class string, p catalog.Profile) error {
	err := checkClass(class)
	if err == nil {
		err = s.watch(ctx, func(tx *redis.Tx) error {
			stored, err := tx.HGet(ctx, s.variants, variant).Bytes()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("variant %w", ErrNotFound)
			}
			if err != nil {
				return err
			}
			v, err := decodeVariant(variant, stored)
			if err != nil {
				return err
			}
			enc, err := encodeVariant(setProfile(v, class, p))
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(pl redis.Pipeliner) error {
				pl.HSet(ctx, s.variants, variant, enc)
				pl.Publish(ctx, s.changes, "profile "+variant)
				return nil
			})
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("set profile of %s on %s: %w", variant, class, s.classify(ctx, err))
	}
	return nil
}

// Digests implements Store.
func (s *RedisStore) Digests(ctx context.Context) (map[string]struct{}, error) {
	var archs, variants, leases *redis.MapStringStringCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		archs = p.HGetAll(ctx, s.archs)
		variants = p.HGetAll(ctx, s.variants)
		leases = p.HGetAll(ctx, s.leases)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list digests: %w", s.classify(ctx, err))
	}
	set := map[string]struct{}{}
	for name, enc := range archs.Val() {
		a, err := decodeArch(name, []byte(enc))
		if err != nil {
			return nil, fmt.Errorf("list digests: %w", err)
		}
		addDigest(set, a.ModelDigest)
	}
	for name, enc := range leases.Val() {
		l, err := decodeLease(name, []byte(enc))
		if err != nil {
			return nil, fmt.Errorf("list digests: %w", err)
		}
		for _, d := range l.Digests {
			addDigest(set, d)
		}
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

// The blob lock is a key set with NX and a PX expiry, holding a random
// token; only the holder of the token renews or deletes it.
var (
	renewLockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	unlockScript    = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// errBlobLockLost: the blob lock expired or was taken over before its
// holder released it.
var errBlobLockLost = errors.New("lost the blob lock: it expired before it could be renewed")

// LockBlobs implements Store: SET NX PX with a random token, polled while
// another holds it, renewed every third of its expiry while held, and
// released with a compare-and-delete script.
func (s *RedisStore) LockBlobs(ctx context.Context) (context.Context, func(), error) {
	token, err := randomToken()
	if err != nil {
		return nil, nil, fmt.Errorf("lock blobs: %w", err)
	}
	for {
		ok, err := s.client.SetNX(ctx, s.blobLock, token, blobLockTTL).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("lock blobs: %w", s.classify(ctx, err))
		}
		if ok {
			break
		}
		if err := waitCtx(ctx, lockPollInterval); err != nil {
			return nil, nil, fmt.Errorf("lock blobs: %w", err)
		}
	}
	held, cancel := context.WithCancelCause(ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s.keepLock(held, cancel, token, stop)
	}()
	release := sync.OnceFunc(func() {
		close(stop)
		<-done
		cancel(context.Canceled)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer rcancel()
		// If this fails the lock expires on its own.
		_ = unlockScript.Run(rctx, s.client, []string{s.blobLock}, token).Err()
	})
	return held, release, nil
}

// keepLock renews the blob lock until stop is closed or held ends, and
// cancels held if the lock is lost: taken by another, or not renewed in
// time because the server could not be reached.
func (s *RedisStore) keepLock(held context.Context, cancel context.CancelCauseFunc, token string, stop <-chan struct{}) {
	tick := time.NewTicker(blobLockTTL / 3)
	defer tick.Stop()
	renewed := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-held.Done():
			return
		case <-tick.C:
		}
		n, err := renewLockScript.Run(held, s.client, []string{s.blobLock}, token, blobLockTTL.Milliseconds()).Int()
		switch {
		case err == nil && n == 1:
			renewed = time.Now()
		case err == nil:
			cancel(errBlobLockLost)
			return
		case time.Since(renewed) >= blobLockTTL:
			cancel(fmt.Errorf("%w: %w", errBlobLockLost, s.classify(held, err)))
			return
		}
	}
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Changes implements Store with a SUBSCRIBE to the changes channel. It
// returns once the server has confirmed the subscription. go-redis pings
// the connection and resubscribes after losing it; each resubscription
// signals too, since a change may have been published meanwhile.
func (s *RedisStore) Changes(ctx context.Context) (<-chan struct{}, error) {
	ps := s.client.Subscribe(ctx)
	fail := func(err error) (<-chan struct{}, error) {
		_ = ps.Close()
		return nil, fmt.Errorf("watch changes: %w", s.classify(ctx, err))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := ps.Subscribe(ctx, s.changes); err != nil {
		return fail(err)
	}
	for confirmed := false; !confirmed; {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return fail(err)
		}
		_, confirmed = msg.(*redis.Subscription)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fail(errClosed)
	}
	s.subs[ps] = struct{}{}
	s.mu.Unlock()

	in := ps.ChannelWithSubscriptions()
	out := make(chan struct{}, 1)
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	go func() {
		defer close(out)
		defer stop()
		for msg := range in {
			switch msg.(type) {
			case *redis.Message, *redis.Subscription:
				signal(out)
			}
		}
		s.mu.Lock()
		delete(s.subs, ps)
		s.mu.Unlock()
	}()
	return out, nil
}

// Identity returns the store's identity, creating it on first use: a
// Redis restarted empty answers with a new one.
func (s *RedisStore) Identity(ctx context.Context) (string, error) {
	if err := s.client.SetNX(ctx, s.identity, newIdentity(), 0).Err(); err != nil {
		return "", fmt.Errorf("store identity: %w", s.classify(ctx, err))
	}
	id, err := s.client.Get(ctx, s.identity).Result()
	if err != nil {
		return "", fmt.Errorf("store identity: %w", s.classify(ctx, err))
	}
	return id, nil
}
