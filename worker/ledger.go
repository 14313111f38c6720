package worker

import "fmt"

// ledger books the worker's memory. A load reserves its need
// (catalog.MemoryNeed of the variant's profile and file) before it
// starts and releases it when the replica is closed, so concurrent loads
// can never together over-commit. Not safe for concurrent use on its own:
// the Worker guards it with its mutex.
type ledger struct {
	capacity int64
	reserved int64
	held     map[string]int64 // replica ID -> bytes
}

func newLedger(capacity int64) *ledger {
	return &ledger{capacity: capacity, held: map[string]int64{}}
}

// reserve books n bytes for id, or fails with ErrNoMemory.
func (l *ledger) reserve(id string, n int64) error {
	if n <= 0 {
		return fmt.Errorf("reserve %d bytes for %s: a reservation must be positive", n, id)
	}
	if _, ok := l.held[id]; ok {
		return fmt.Errorf("reserve for %s: already holds a reservation", id)
	}
	if free := l.capacity - l.reserved; n > free {
		return fmt.Errorf("%w: %s needs %s but %s of %s are free", ErrNoMemory, id, bytesString(n), bytesString(free), bytesString(l.capacity))
	}
	l.held[id] = n
	l.reserved += n
	return nil
}

// release frees id's reservation; releasing twice is a no-op.
func (l *ledger) release(id string) {
	n, ok := l.held[id]
	if !ok {
		return
	}
	delete(l.held, id)
	l.reserved -= n
}

func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
