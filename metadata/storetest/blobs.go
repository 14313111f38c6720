package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

var blobLockTests = []test{
	{"release ends the held context and frees the lock", func(t *testing.T, s metadata.Store) {
		held, release, err := s.LockBlobs(t.Context())
		wantErr(t, "LockBlobs", err, nil)
		if err := held.Err(); err != nil {
			t.Fatalf("held context ended while the lock is held: %v", err)
		}
		release()
		<-held.Done()
		release() // a second release does nothing
		_, again, err := s.LockBlobs(t.Context())
		wantErr(t, "LockBlobs after release", err, nil)
		again()
	}},
	{"waiting ends with the context", func(t *testing.T, s metadata.Store) {
		_, release, err := s.LockBlobs(t.Context())
		wantErr(t, "LockBlobs", err, nil)
		defer release()
		ctx, cancel := context.WithCancel(t.Context())
		errs := make(chan error, 2)
		go func() {
			_, r, err := s.LockBlobs(ctx)
			if err == nil {
				r()
			}
			errs <- err
		}()
		go func() { errs <- s.BeginRegistration(ctx, pendingArch("lenet", mnist), owner, leaseTTL) }()
		cancel()
		wantErr(t, "a waiting call", <-errs, context.Canceled)
		wantErr(t, "a waiting call", <-errs, context.Canceled)
		equal(t, "Pending", pendingArchs(t, s), []catalog.Architecture{})
	}},
	{"reads and writes that add no reference do not wait", func(t *testing.T, s metadata.Store) {
		_, vs := register(t, s, "lenet", mnist)
		register(t, s, "mlp", mnist)
		begin(t, s, pendingArch("pending", mnist))
		begin(t, s, pendingArch("aborted", mnist))
		held, release, err := s.LockBlobs(t.Context())
		wantErr(t, "LockBlobs", err, nil)
		defer release()
		// held ends if these wait for the lock and the test times out.
		_ = must[map[string]struct{}](t, "Digests")(s.Digests(held))
		_ = must[[]metadata.PendingRegistration](t, "Pending")(s.Pending(held))
		wantErr(t, "RenewLease", s.RenewLease(held, "pending", owner, leaseTTL), nil)
		wantErr(t, "AbortRegistration", s.AbortRegistration(held, "aborted", owner), nil)
		wantErr(t, "SetProfile", s.SetProfile(held, vs[0].Name, "gpu", gpuProfile(1)), nil)
		wantErr(t, "DeleteArchitecture", s.DeleteArchitecture(held, "mlp"), nil)
	}},
}

// testLockExcludes checks that while a holds the blob lock, b cannot take
// it: b's LockBlobs returns only after a released it.
func testLockExcludes(t *testing.T, a, b metadata.Store) {
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	_, release, err := a.LockBlobs(t.Context())
	wantErr(t, "LockBlobs(a)", err, nil)
	acquired := make(chan error, 1)
	go func() {
		_, r, err := b.LockBlobs(t.Context())
		if err == nil {
			record("b acquired")
			r()
		}
		acquired <- err
	}()
	// a works as a collector would while b waits.
	_ = must[map[string]struct{}](t, "Digests")(a.Digests(t.Context()))
	record("a releases")
	release()
	wantErr(t, "LockBlobs(b)", <-acquired, nil)
	equal(t, "order of events", events, []string{"a releases", "b acquired"})
}

// testReferencesWait checks that the writes that add blob references wait
// while another client holds the blob lock, so a collector's list of
// references stays true until it has deleted what was not in it.
func testReferencesWait(t *testing.T, a, b metadata.Store) {
	ctx := t.Context()
	begin(t, a, pendingArch("adding", mnist))
	committing := pendingArch("committing", mnist)
	begin(t, a, committing)
	fresh := pendingArch("fresh", mnist)

	_, release, err := a.LockBlobs(ctx)
	wantErr(t, "LockBlobs", err, nil)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Go(func() { errs[0] = b.BeginRegistration(ctx, fresh, owner, leaseTTL) })
	wg.Go(func() { errs[1] = b.AddPendingDigests(ctx, "adding", owner, "sha256:added") })
	wg.Go(func() {
		errs[2] = b.CommitRegistration(ctx, committedArch("committing", mnist), owner, useCase(mnist), variantsOf("committing"))
	})
	added := []string{fresh.ModelDigest, "sha256:added"}
	for _, v := range variantsOf("committing") {
		added = append(added, v.FileDigest)
	}
	refs := must[map[string]struct{}](t, "Digests")(a.Digests(ctx))
	for _, d := range added {
		if _, ok := refs[d]; ok {
			t.Errorf("%s was referenced while the blob lock was held", d)
		}
	}
	release()
	wg.Wait()
	for i, call := range []string{"BeginRegistration", "AddPendingDigests", "CommitRegistration"} {
		wantErr(t, call+" after the lock was released", errs[i], nil)
	}
	refs = must[map[string]struct{}](t, "Digests")(a.Digests(ctx))
	for _, d := range added {
		if _, ok := refs[d]; !ok {
			t.Errorf("%s is not referenced after the writes finished", d)
		}
	}
}

// testLeaseAcrossClients checks that a lease taken through one client
// protects the registration from the other until it expires.
func testLeaseAcrossClients(t *testing.T, a, b metadata.Store) {
	ctx := t.Context()
	begin(t, a, pendingArch("live", mnist))
	beginExpired(t, a, pendingArch("dead", mnist), owner)
	ps := must[[]metadata.PendingRegistration](t, "Pending")(b.Pending(ctx))
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.Architecture.Name)
		if p.Owner != owner || p.Expired != (p.Architecture.Name == "dead") {
			t.Errorf("b sees %s owned by %q, expired %v", p.Architecture.Name, p.Owner, p.Expired)
		}
	}
	equal(t, "Pending through b", names, []string{"dead", "live"})
	wantErr(t, "AbortRegistration(live) through b", b.AbortRegistration(ctx, "live", other), metadata.ErrConflict)
	wantErr(t, "AbortRegistration(dead) through b", b.AbortRegistration(ctx, "dead", other), nil)
	wantErr(t, "RenewLease(dead) through a", a.RenewLease(ctx, "dead", owner, leaseTTL), metadata.ErrNotFound)
	wantErr(t, "RenewLease(live) through b by its owner", b.RenewLease(ctx, "live", owner, leaseTTL), nil)
	commit(t, a, committedArch("live", mnist), useCase(mnist), variantsOf("live"))
	equal(t, "Pending through b after the commit", pendingArchs(t, b), []catalog.Architecture{})
}
