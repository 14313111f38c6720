// Package metadata owns the durable record of what infaas knows about its
// models: use cases, architectures (pending or ready), their variants and
// profiles. Store is the one interface the rest of the system uses; BoltStore
// keeps everything in an embedded bbolt file for a single node, RedisStore in
// a Redis server shared by several nodes. Both make each multi-record change
// (committing a registration, deleting an architecture, setting a profile)
// atomic, and both pass the same conformance suite in package storetest.
//
// A registration is two-phase: BeginRegistration reserves the name with a
// pending architecture held under a lease (an owner ID and an expiry by the
// store's clock), the registrar then generates and profiles variants while
// renewing the lease, and CommitRegistration publishes the architecture, its
// variants and (if new) its use case in one step, or AbortRegistration gives
// the name back. Pending architectures are invisible to listings; Pending
// returns them with their leases so that any registrar sharing the store
// can clean up after one that died (once its lease has expired) without
// touching registrations that live processes hold.
//
// Blobs are garbage-collected against Digests under the store-wide
// LockBlobs; a registration references each blob (AddPendingDigests) before
// writing it, so no collector of any process deletes it in between.
// Changes signals every commit, abort, delete and profile update made
// through any handle on the store, so each controller can refresh its
// catalog at once. A RedisStore that cannot reach its server says so with
// ErrUnavailable.
package metadata
