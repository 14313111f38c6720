package metadata

import (
	"context"
	"errors"
	"sync"
)

// errClosed: the store was closed.
var errClosed = errors.New("the metadata store is closed")

// broadcaster fans a coalesced change signal out to in-process
// subscribers: each has a channel buffering one signal, and a send never
// blocks.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	closed bool
}

// subscribe returns a channel that gets the signals from now on and is
// closed when ctx ends or the broadcaster closes.
func (b *broadcaster) subscribe(ctx context.Context) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	if b.subs == nil {
		b.subs = map[chan struct{}]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() { b.unsubscribe(ch) })
	return ch, nil
}

func (b *broadcaster) unsubscribe(ch chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

// notify signals every subscriber that has no signal pending.
func (b *broadcaster) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		signal(ch)
	}
}

// close closes every subscriber's channel; later subscriptions fail.
func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		close(ch)
	}
	b.subs = nil
}

// signal sends on ch unless a signal is already pending there.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
