package worker

import (
	"errors"

	"github.com/infaas/infaas/batching"
)

// Sentinel errors. The serving layer maps them to HTTP statuses and gRPC
// codes; each message says what the caller should do.
var (
	// ErrNoMemory: loading the variant would over-commit the worker's
	// memory. Unload something or place the variant on another worker.
	ErrNoMemory = errors.New("not enough memory on the worker")
	// ErrOverloaded: admission control refused the request (queue full, or
	// its deadline cannot be met given the queued work). Try later or
	// another replica. It is batching.ErrOverloaded itself, the error
	// batching.Admit wraps, so errors.Is matches either name.
	ErrOverloaded = batching.ErrOverloaded
	// ErrUnknownReplica: no replica has that ID on this worker.
	ErrUnknownReplica = errors.New("unknown replica")
	// ErrNotReady: the replica is still loading.
	ErrNotReady = errors.New("replica is still loading")
	// ErrDraining: the replica is being unloaded and takes no new requests.
	// Send the request to another replica.
	ErrDraining = errors.New("replica is draining")
	// ErrBadInput: the request does not fit the replica's model (batch
	// size, byte count).
	ErrBadInput = errors.New("invalid input")
	// ErrIncompatible: the variant cannot run on this worker or with this
	// architecture (provider, datatype, shapes).
	ErrIncompatible = errors.New("variant cannot run here")
	// ErrStopped: the worker is shutting down or has stopped.
	ErrStopped = errors.New("worker stopped")
)
