package metadata_test

import (
	"maps"
	"sync"
	"testing"

	"github.com/infaas/infaas/internal/testredis"
)

// TestRedisUnplacedLog: counts two controllers add are summed by class; a
// take returns them all and empties the pool; concurrent takers never get
// the same counts twice.
func TestRedisUnplacedLog(t *testing.T) {
	url := "redis://" + testredis.Start(t) + "/0"
	a, b := openRedis(t, url, "unplaced:"), openRedis(t, url, "unplaced:")
	ctx := t.Context()
	if err := a.AddUnplaced(ctx, map[string]int{"cpu-2": 3, "gpu-v100": 1, "none": 0}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddUnplaced(ctx, map[string]int{"cpu-2": 2}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddUnplaced(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := a.TakeUnplaced(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"cpu-2": 5, "gpu-v100": 1}; !maps.Equal(got, want) {
		t.Errorf("took %v, want %v", got, want)
	}
	if again, err := b.TakeUnplaced(ctx); err != nil || len(again) != 0 {
		t.Errorf("a second take: %v, %v; want nothing left", again, err)
	}
	// Another installation's prefix shares nothing.
	other := openRedis(t, url, "other:")
	if err := other.AddUnplaced(ctx, map[string]int{"cpu-1": 7}); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.TakeUnplaced(ctx); len(got) != 0 {
		t.Errorf("took %v from another prefix's pool", got)
	}

	// 200 loads added while two takers race: every one is taken once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	take := func() {
		got, err := b.TakeUnplaced(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		total += got["cpu-2"]
		mu.Unlock()
	}
	for range 100 {
		wg.Add(3)
		go func() { defer wg.Done(); _ = a.AddUnplaced(ctx, map[string]int{"cpu-2": 2}) }()
		go func() { defer wg.Done(); take() }()
		go func() { defer wg.Done(); take() }()
	}
	wg.Wait()
	take()
	if total != 200 {
		t.Errorf("took %d loads in all, want the 200 added", total)
	}
}
