package metadata

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// UnplacedLog pools, across the controllers that share workers, the
// replica loads their queries wanted and no worker had room for, counted
// by hardware class: the controller that scales takes them all, so that it
// adds workers for a model whose queries reach only another controller (a
// client's long-lived connection sticks to one). A store only one process
// opens (bbolt) has no need of one; the Redis store is one.
type UnplacedLog interface {
	// AddUnplaced adds counts (class → loads) to the pool.
	AddUnplaced(ctx context.Context, counts map[string]int) error
	// TakeUnplaced returns the pool and empties it, at once: two takers
	// never both get the same counts.
	TakeUnplaced(ctx context.Context) (map[string]int, error)
}

var _ UnplacedLog = (*RedisStore)(nil)

// unplacedTTL is how long pooled counts wait for a taker: a scaling
// controller takes them every step (a second); counts nobody took for this
// long describe a past that no longer asks for workers.
const unplacedTTL = time.Minute

func (s *RedisStore) unplacedKey() string { return s.prefix + "unplaced" }

// AddUnplaced implements UnplacedLog: one HINCRBY a class, in one
// transaction that also refreshes the pool's expiry.
func (s *RedisStore) AddUnplaced(ctx context.Context, counts map[string]int) error {
	n := 0
	for _, c := range counts {
		if c > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for class, c := range counts {
			if c > 0 {
				p.HIncrBy(ctx, s.unplacedKey(), class, int64(c))
			}
		}
		p.Expire(ctx, s.unplacedKey(), unplacedTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("pool unplaced loads in %s: %w", s.where, s.classify(ctx, err))
	}
	return nil
}

// TakeUnplaced implements UnplacedLog: HGETALL and DEL in one transaction.
func (s *RedisStore) TakeUnplaced(ctx context.Context) (map[string]int, error) {
	var all *redis.MapStringStringCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, s.unplacedKey())
		p.Del(ctx, s.unplacedKey())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take unplaced loads from %s: %w", s.where, s.classify(ctx, err))
	}
	out := make(map[string]int, len(all.Val()))
	for class, v := range all.Val() {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("take unplaced loads from %s: class %q holds %q, not a count", s.where, class, v)
		}
		out[class] = n
	}
	return out, nil
}
