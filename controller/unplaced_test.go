package controller

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/internal/testredis"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/provider"
)

// startsOnly is a provider for a unit test of the controller: it records
// the workers it is asked to start and starts nothing.
type startsOnly struct {
	mu      sync.Mutex
	started []string
}

func (p *startsOnly) Name() string { return "test" }
func (p *startsOnly) Start(_ context.Context, class catalog.HardwareClass) (provider.Worker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = append(p.started, class.Name)
	return provider.Worker{ID: "w-" + class.Name, Class: class.Name, State: provider.StateRunning, Started: time.Now()}, nil
}
func (p *startsOnly) Stop(context.Context, string) error { return nil }
func (p *startsOnly) List() []provider.Worker            { return nil }
func (p *startsOnly) Run(ctx context.Context) error      { <-ctx.Done(); return nil }

// TestUnplacedLoadsReachTheScalingController: the loads a controller that
// does not scale could not place reach the one that does, through the
// shared Redis store, and it adds a worker of their class saying why —
// though not one query that wanted them reached it.
func TestUnplacedLoadsReachTheScalingController(t *testing.T) {
	url := "redis://" + testredis.Start(t) + "/0"
	class := catalog.HardwareClass{Name: "cpu-9", Provider: "cpu", Cores: 1, MemoryBytes: 1 << 30, PricePerHour: 0.1}
	open := func(leading bool, prov provider.Provider) *Controller {
		store, err := metadata.OpenRedis(t.Context(), url, metadata.WithKeyPrefix("unplaced-test:"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		cfg := DefaultConfig()
		cfg.Classes = []catalog.HardwareClass{class}
		cfg.Autoscale = AutoscaleConfig{Cluster: &autoscale.ClusterConfig{MaxWorkers: 2, OutWindow: time.Second, Interval: time.Second},
			Provider: prov, Leading: func() bool { return leading }}
		c, err := New(cfg, store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	follower := open(false, &startsOnly{})
	leaderProv := &startsOnly{}
	leader := open(true, leaderProv)

	addWorker := func() string {
		for _, e := range leader.Events().Last(100) {
			if e.Action == "add-worker" {
				return e.Message
			}
		}
		return ""
	}
	now := time.Now()
	for i := 0; i < 10 && addWorker() == ""; i++ {
		at := now.Add(time.Duration(i) * time.Second)
		// Two of the follower's queries wanted a load of class cpu-9.
		follower.traffic.Note(at, "", health.Asked{}, class.Name)
		follower.traffic.Note(at, "", health.Asked{}, class.Name)
		follower.autoscaleStep(t.Context(), at)
		leader.autoscaleStep(t.Context(), at)
	}
	why := addWorker()
	if why == "" {
		t.Fatal("the scaling controller added no worker for the follower's unplaced loads in 10 steps")
	}
	waitUntil(t, "the provider to start a worker of class cpu-9", func() bool {
		leaderProv.mu.Lock()
		defer leaderProv.mu.Unlock()
		return len(leaderProv.started) == 1 && leaderProv.started[0] == class.Name
	})
	if !strings.Contains(why, "could not place 2 load(s) on class cpu-9") {
		t.Errorf("add-worker says %q; want the follower's 2 unplaced loads as the reason", why)
	}
}
