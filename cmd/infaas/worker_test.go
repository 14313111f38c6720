package main

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestAnnounceAllJoinsEveryAddress: a name that resolves to several
// addresses (a headless Service; here localhost, which resolves to its
// loopback addresses) gets one announcer per address, each once, and all
// of them end with the context.
func TestAnnounceAllJoinsEveryAddress(t *testing.T) {
	var mu sync.Mutex
	started := map[string]int{}
	running := 0
	announce := func(ctx context.Context, addr string) error {
		mu.Lock()
		started[addr]++
		running++
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- announceAll(ctx, "localhost:8003", 20*time.Millisecond, announce, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		_, ok := started["127.0.0.1:8003"]
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announcer for 127.0.0.1:8003 (started %v)", started)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // several re-resolutions
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for addr, n := range started {
		if n != 1 {
			t.Errorf("%s announced %d times over re-resolutions; want once", addr, n)
		}
	}
	if running != 0 {
		t.Errorf("%d announcers still running after the context ended", running)
	}
	if addrs := slices.Sorted(maps.Keys(started)); !slices.Contains(addrs, "127.0.0.1:8003") {
		t.Errorf("announced %v", addrs)
	}
}
