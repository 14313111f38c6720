package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Property: whatever the sequence of reservations and releases, the ledger
// never books more than its capacity, refuses only what would not fit, and
// its total is the sum of what it holds.
func TestLedgerNeverOverCommits(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		capacity := int64(1 + rng.IntN(1000))
		l := newLedger(capacity)
		held := map[string]int64{}
		for step := range 500 {
			if len(held) > 0 && rng.IntN(3) == 0 {
				for id := range held { // release an arbitrary one
					l.release(id)
					l.release(id) // twice is a no-op
					delete(held, id)
					break
				}
			} else {
				id := fmt.Sprintf("r%d", step)
				n := int64(1 + rng.IntN(int(capacity)/2+1))
				free := capacity - l.reserved
				err := l.reserve(id, n)
				switch {
				case err == nil:
					if n > free {
						t.Fatalf("seed %d step %d: reserved %d with %d free", seed, step, n, free)
					}
					held[id] = n
				case errors.Is(err, ErrNoMemory):
					if n <= free {
						t.Fatalf("seed %d step %d: refused %d with %d free: %v", seed, step, n, free, err)
					}
				default:
					t.Fatal(err)
				}
			}
			var sum int64
			for _, n := range held {
				sum += n
			}
			if l.reserved != sum || l.reserved > capacity || l.reserved < 0 {
				t.Fatalf("seed %d step %d: reserved %d, held %d, capacity %d", seed, step, l.reserved, sum, capacity)
			}
		}
	}
}

func TestLedgerRejectsNonsense(t *testing.T) {
	l := newLedger(100)
	if err := l.reserve("a", 0); err == nil {
		t.Error("zero reservation accepted")
	}
	if err := l.reserve("a", 10); err != nil {
		t.Fatal(err)
	}
	if err := l.reserve("a", 10); err == nil {
		t.Error("second reservation under one ID accepted")
	}
	if err := l.reserve("b", 91); !errors.Is(err, ErrNoMemory) {
		t.Errorf("over-commit: %v", err)
	} else {
		t.Log(err)
	}
}
