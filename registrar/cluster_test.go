package registrar_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/internal/testredis"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/profiler"
	"github.com/infaas/infaas/registrar"
	"github.com/infaas/infaas/repository"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cluster is one Redis server and one blob directory shared by the
// controllers a test starts.
type cluster struct {
	addr, prefix, repoDir string
}

func newCluster(t *testing.T) cluster {
	return cluster{addr: testredis.Start(t), prefix: "cluster:", repoDir: filepath.Join(t.TempDir(), "models")}
}

// controller opens a store client and the repository as one more process
// would, and a registrar owned by owner on them.
func (c cluster) controller(t *testing.T, owner string, prof *profiler.Profiler) (*registrar.Registrar, metadata.Store, *repository.Repository) {
	t.Helper()
	store, err := metadata.OpenRedis(t.Context(), "redis://"+c.addr+"/0", metadata.WithKeyPrefix(c.prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	repo, err := repository.Open(t.Context(), c.repoDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	cfg := registrar.DefaultConfig()
	cfg.Owner = owner
	cfg.GCGrace = 0 // these tests check which blobs go, not when (gc_test.go)
	return registrar.New(cfg, store, repo, prof, quiet), store, repo
}

func newProfiler(t *testing.T) *profiler.Profiler {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := profiler.DefaultConfig()
	cfg.PerBatch = 10 * time.Millisecond
	return profiler.New(exe, cfg)
}

func put(t *testing.T, repo *repository.Repository, content string) string {
	t.Helper()
	d, err := repo.Put(t.Context(), []byte(content))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func blobs(t *testing.T, repo *repository.Repository) []string {
	t.Helper()
	all, err := repo.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(all)
	return all
}

func sorted(ds ...string) []string {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

func pendingArch(name, modelDigest string) catalog.Architecture {
	return catalog.Architecture{Name: name, Task: "classification", Dataset: "mnist", State: catalog.StatePending, ModelDigest: modelDigest}
}

// TestRecoverLeavesOtherControllersRegistrationsAlone starts a controller
// on a store where another controller has a registration in flight (model
// and a graph written, not committed), a third died mid-registration, and a
// previous run of this controller under the same owner ID left one behind.
// Recover removes only the dead and the stale registrations and their blobs.
func TestRecoverLeavesOtherControllersRegistrationsAlone(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	_, storeB, repo := c.controller(t, "b", nil)

	// b: a registration in flight, as registrar b writes it.
	liveModel := put(t, repo, "live model")
	if err := storeB.BeginRegistration(ctx, pendingArch("live", liveModel), "b", time.Hour); err != nil {
		t.Fatal(err)
	}
	liveGraph := repository.Digest([]byte("live graph"))
	if err := storeB.AddPendingDigests(ctx, "live", "b", liveGraph); err != nil {
		t.Fatal(err)
	}
	put(t, repo, "live graph")

	// b: a registered architecture.
	readyModel := put(t, repo, "ready model")
	readyGraph := put(t, repo, "ready graph")
	if err := storeB.BeginRegistration(ctx, pendingArch("ready", readyModel), "b", time.Hour); err != nil {
		t.Fatal(err)
	}
	ready := pendingArch("ready", readyModel)
	v := catalog.Variant{Name: catalog.VariantName("ready", "fp32", "all", 1, 1, "cpu"), Architecture: "ready", FileDigest: readyGraph}
	if err := storeB.CommitRegistration(ctx, ready, "b", catalog.UseCase{Task: "classification", Dataset: "mnist"}, []catalog.Variant{v}); err != nil {
		t.Fatal(err)
	}

	// c: died mid-registration; its lease has expired.
	deadModel := put(t, repo, "dead model")
	if err := storeB.BeginRegistration(ctx, pendingArch("dead", deadModel), "c", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadGraph := repository.Digest([]byte("dead graph"))
	if err := storeB.AddPendingDigests(ctx, "dead", "c", deadGraph); err != nil {
		t.Fatal(err)
	}
	put(t, repo, "dead graph")
	waitExpired(t, storeB, "dead")

	// a's previous run: same owner ID, lease still valid.
	staleModel := put(t, repo, "stale model")
	if err := storeB.BeginRegistration(ctx, pendingArch("stale", staleModel), "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	garbage := put(t, repo, "nobody's")

	regA, storeA, _ := c.controller(t, "a", nil)
	if err := regA.Recover(ctx); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	ps, err := storeA.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Architecture.Name != "live" || ps[0].Owner != "b" {
		t.Fatalf("pending after Recover: %+v; want only b's live registration", ps)
	}
	if got, want := blobs(t, repo), sorted(liveModel, liveGraph, readyModel, readyGraph); !slices.Equal(got, want) {
		t.Fatalf("blobs after Recover:\n got  %v\n want %v (removed: %s, %s, %s, %s)", got, want, deadModel, deadGraph, staleModel, garbage)
	}
	// b still owns its registration and can finish it.
	if err := storeB.RenewLease(ctx, "live", "b", time.Hour); err != nil {
		t.Fatalf("RenewLease by b after a's Recover: %v", err)
	}
}

func waitExpired(t *testing.T, s metadata.Store, name string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ps, err := s.Pending(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Architecture.Name == name && p.Expired {
				return
			}
		}
		poll := time.NewTimer(time.Millisecond)
		select {
		case <-deadline.C:
			t.Fatalf("lease of %s did not expire", name)
		case <-poll.C:
		}
	}
}

// TestRegistrationSurvivesAnotherControllersCollector registers a model
// through controller a while controller b collects garbage over and over
// on the same store and blob directory: every blob the committed
// registration references must still exist, and b's signal arrives.
func TestRegistrationSurvivesAnotherControllersCollector(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := newCluster(t)
	regA, storeA, repo := c.controller(t, "a", newProfiler(t))
	regB, storeB, _ := c.controller(t, "b", nil)
	changes, err := storeB.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- regA.Run(ctx) }()

	acc := 98.0
	st, err := regA.Submit(ctx, registrar.Request{Name: "mnist-8", Task: "classification", Dataset: "mnist",
		Model: zootest.Model(t, "mnist-8"), DeclaredAccuracy: &acc, InputScale: 1.0 / 255})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	collections := 0
	for st.State != registrar.StateReady && st.State != registrar.StateFailed {
		if err := regB.Recover(ctx); err != nil {
			t.Fatalf("b's Recover while a registers: %v", err)
		}
		collections++
		if st, err = regA.Status(ctx, "mnist-8"); err != nil {
			t.Fatal(err)
		}
	}
	if st.State != registrar.StateReady {
		t.Fatalf("registration %s: %s", st.State, st.Error)
	}
	t.Logf("b collected garbage %d times during the registration", collections)
	if err := regB.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	refs, err := storeA.Digests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := blobs(t, repo)
	for d := range refs {
		if !slices.Contains(stored, d) {
			t.Errorf("referenced blob %s was deleted", d)
		}
	}
	if len(stored) != len(refs) {
		t.Errorf("%d blobs stored, %d referenced", len(stored), len(refs))
	}
	if ps, err := storeA.Pending(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("Pending after the registration: %v, %v", ps, err)
	}
	select {
	case <-changes:
	case <-time.After(20 * time.Second):
		t.Fatal("b got no change signal for a's commit")
	}
	vs, err := storeB.Variants(ctx, "mnist-8")
	if err != nil || len(vs) == 0 {
		t.Fatalf("b sees variants %v, %v", vs, err)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestSubmitTakesOverAnAbandonedName lets a name held by a dead
// controller's expired registration be registered again at once, while a
// name another live controller is registering stays taken.
func TestSubmitTakesOverAnAbandonedName(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	_, storeB, _ := c.controller(t, "b", nil)
	regA, storeA, _ := c.controller(t, "a", newProfiler(t))
	if err := storeB.BeginRegistration(ctx, pendingArch("abandoned", "sha256:gone"), "dead", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := storeB.BeginRegistration(ctx, pendingArch("taken", "sha256:live"), "b", time.Hour); err != nil {
		t.Fatal(err)
	}
	waitExpired(t, storeB, "abandoned")

	acc := 98.0
	req := func(name string) registrar.Request {
		return registrar.Request{Name: name, Task: "classification", Dataset: "mnist", Model: zootest.Model(t, "mnist-8"), DeclaredAccuracy: &acc}
	}
	// Run is not started: the accepted job stays queued.
	st, err := regA.Submit(ctx, req("abandoned"))
	if err != nil || st.State != registrar.StateQueued {
		t.Fatalf("Submit(abandoned) = %+v, %v; want queued", st, err)
	}
	if _, err := regA.Submit(ctx, req("taken")); !errors.Is(err, registrar.ErrExists) {
		t.Fatalf("Submit(taken) = %v; want ErrExists", err)
	}
	ps, err := storeA.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Architecture.Name != "taken" {
		t.Fatalf("pending: %+v; want only b's live registration", ps)
	}
}

// TestCollectorNeverTrustsAStrangerStore: the repository records which
// store its blobs belong to. The same store collects its garbage; an
// emptied or different store (a Redis restarted without persistence, a
// wrong --store) collects nothing, and neither does an empty store facing
// a repository that records no store yet.
func TestCollectorNeverTrustsAStrangerStore(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)

	// A repository with blobs and no recorded store, an empty store.
	_, _, repo := c.controller(t, "first", nil)
	orphan := put(t, repo, "a model from before")
	regEmpty, _, _ := c.controller(t, "empty", nil)
	if err := regEmpty.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blobs(t, repo); !slices.Equal(got, []string{orphan}) {
		t.Fatalf("an empty store collected %v → %v", orphan, got)
	}

	// The store references a model: the repository adopts it, and its
	// garbage goes.
	reg, store, _ := c.controller(t, "owner", nil)
	model := put(t, repo, "the registered model")
	if err := store.BeginRegistration(ctx, pendingArch("kept", model), "owner", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := store.CommitRegistration(ctx, pendingArch("kept", model), "owner", catalog.UseCase{Task: "classification", Dataset: "mnist"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := reg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blobs(t, repo); !slices.Equal(got, []string{model}) {
		t.Fatalf("the owning store kept %v, want only %s", got, model)
	}
	id, err := store.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bound, err := repo.StoreIdentity(ctx); err != nil || bound != id {
		t.Fatalf("repository records store %q (%v), want %q", bound, err, id)
	}

	// The same Redis, emptied: another identity, nothing collected.
	restarted := c
	restarted.prefix = "restarted:"
	regNew, _, _ := restarted.controller(t, "after-restart", nil)
	if err := regNew.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blobs(t, repo); !slices.Equal(got, []string{model}) {
		t.Fatalf("a stranger store collected: %v left, want %s", got, model)
	}
}

// TestSharingRuleHoldsAtCommit: tenant a's registration with a declared
// accuracy is accepted while classification/mnist is a's alone; tenant b
// commits a measured architecture to the same use case before a's job
// runs; a's job then fails as forbidden and commits nothing.
func TestSharingRuleHoldsAtCommit(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	reg, store, _ := c.controller(t, "ctrl", newProfiler(t))
	acc := 99.0
	st, err := reg.Submit(ctx, registrar.Request{Name: "declared", Owner: "a", Task: "classification", Dataset: "mnist",
		Model: zootest.Model(t, "mnist-8"), DeclaredAccuracy: &acc})
	if err != nil || st.State != registrar.StateQueued {
		t.Fatalf("Submit = %+v, %v; want queued", st, err)
	}
	contract, err := executor.Inspect(zootest.Model(t, "mnist-8"))
	if err != nil {
		t.Fatal(err)
	}
	b := pendingArch("measured-b", "sha256:b")
	b.Owner, b.AccuracySource, b.Accuracy = "b", catalog.AccuracyMeasured, 97
	b.Contract = contract // the same tensors: only the sharing rule stands between the two
	if err := store.BeginRegistration(ctx, b, "other", time.Hour); err != nil {
		t.Fatal(err)
	}
	b.State = catalog.StateReady
	if err := store.CommitRegistration(ctx, b, "other", catalog.UseCaseOf(b), nil); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- reg.Run(rctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err = reg.Status(ctx, "declared")
		if err != nil {
			t.Fatal(err)
		}
		if st.State == registrar.StateFailed || st.State == registrar.StateReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registration still %+v after 2 minutes", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.State != registrar.StateFailed || !strings.Contains(st.Error, "measured") || !strings.Contains(st.Error, `"b"`) {
		t.Fatalf("status %+v; want failed, naming tenant b and measured accuracy", st)
	}
	if _, err := store.Architecture(ctx, "declared"); err == nil {
		t.Error("the refused registration was committed")
	}
}
