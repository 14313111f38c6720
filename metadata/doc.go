// Package metadata owns the durable record of what infaas knows about its
// models: use cases, architectures (pending or ready), their variants and
// profiles. Store is the one interface the rest of the system uses; BoltStore
// keeps everything in an embedded bbolt file for a single node, RedisStore in
// a Redis server shared by several nodes. Both make each multi-record change
// (committing a registration, deleting an architecture) atomic, and both pass
// the same conformance suite in package storetest.
//
// A registration is two-phase: BeginRegistration reserves the name with a
// pending architecture, the registrar then generates and profiles variants,
// and CommitRegistration publishes the architecture, its variants and (if
// new) its use case in one step, or AbortRegistration gives the name back.
// Pending architectures are invisible to listings; Pending returns them so a
// restarted registrar can clean up after a crash.
package metadata
