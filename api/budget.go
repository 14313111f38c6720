package api

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// ErrBodyMemory: the server already holds its budget of request bodies;
// the request may succeed in a moment (503 with Retry-After).
var ErrBodyMemory = errors.New("the server is holding its limit of request bodies in memory")

// BodyBudget bounds the memory that the request bodies being read and
// served hold at once, across all clients. Each request's limit bounds
// one body; the budget bounds their sum, so that many clients sending
// large bodies — slowly or not — cannot together take the server's
// memory. A body takes its buffer's capacity from the budget as the buffer
// grows with the bytes that arrive (never from the announced length) and
// gives it back when the request is answered. A nil budget bounds nothing.
//
// The account is one atomic counter: a request never waits for memory, so
// the query path takes no lock for it.
type BodyBudget struct {
	used  atomic.Int64
	limit int64
}

// NewBodyBudget returns a budget of limit bytes; limit ≤ 0 returns nil
// (no bound).
func NewBodyBudget(limit int64) *BodyBudget {
	if limit <= 0 {
		return nil
	}
	return &BodyBudget{limit: limit}
}

// Limit is the budget in bytes (0 for a nil budget).
func (b *BodyBudget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// hold is what one request holds of a budget.
type hold struct {
	b *BodyBudget
	n int64
}

// take adds n bytes to the hold, or fails at once with ErrBodyMemory: a
// request never waits for memory (it would hold its connection while
// waiting); the client retries.
func (h *hold) take(n int64) error {
	if h.b == nil || n <= 0 {
		return nil
	}
	if h.b.used.Add(n) > h.b.limit {
		h.b.used.Add(-n)
		return fmt.Errorf("%w (%d MiB, --max-body-memory); retry in a moment", ErrBodyMemory, h.b.limit>>20)
	}
	h.n += n
	return nil
}

// release gives everything back.
func (h *hold) release() {
	if h.b != nil && h.n > 0 {
		h.b.used.Add(-h.n)
		h.n = 0
	}
}

// readAll reads r to its end into a buffer that starts at first bytes and
// doubles as data arrives, taking each growth from h. The caller bounds r
// (http.MaxBytesReader); readAll bounds the buffer by max+1 so that a body
// exactly at the limit never doubles past it (max ≤ 0: no bound).
func readAll(r io.Reader, first, max int64, h *hold) ([]byte, error) {
	if first <= 0 {
		first = 512
	}
	if err := h.take(first); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, first)
	for {
		if len(buf) == cap(buf) {
			next := 2 * int64(cap(buf))
			if max > 0 {
				next = min(next, max+1)
			}
			if next <= int64(cap(buf)) {
				next = int64(cap(buf)) + 512
			}
			// The hold follows the live buffer's capacity: the growth is
			// taken, and the outgrown buffer (garbage now) is not counted.
			if err := h.take(next - int64(cap(buf))); err != nil {
				return nil, err
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
