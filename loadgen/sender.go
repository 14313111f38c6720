package loadgen

import (
	"context"
	"time"
)

// Sender sends requests over one transport. Prepare runs once per
// requirement set before the load starts; Send runs once per arrival, on
// its own goroutine, concurrently with other Sends, and must return by the
// context's deadline.
type Sender interface {
	// Prepare builds the request of a set, once: it asks the server for the
	// model's inputs and encodes a body that every Send of the set reuses.
	Prepare(ctx context.Context, set RequirementSet) (*Prepared, error)
	// Send sends one request and classifies its answer.
	Send(ctx context.Context, p *Prepared) Outcome
}

// Prepared is one requirement set's request, ready to send any number of
// times.
type Prepared struct {
	Set RequirementSet
	// Index is the set's position in the mix.
	Index int
	// Timeout bounds each request of the set (Run fills it in).
	Timeout time.Duration
	// Body is what the Sender built in Prepare; only it reads it.
	Body any
}

// Result is how a request ended.
type Result int

const (
	// Answered: the server answered with a result (HTTP 2xx, gRPC OK).
	Answered Result = iota
	// Refused: the server declined the request (HTTP 429, 503 or 422,
	// gRPC ResourceExhausted, Unavailable or FailedPrecondition): it is
	// overloaded, not ready, or cannot meet strict requirements.
	Refused
	// Failed: any other error, a timeout included.
	Failed
)

func (r Result) String() string {
	switch r {
	case Answered:
		return "answered"
	case Refused:
		return "refused"
	}
	return "failed"
}

// Timing is what an infaas answer's parameters say of its time in the
// worker: queued (batching included) and computing, and the batch it ran
// in. Known is false when the answer did not say (another OIP server).
type Timing struct {
	Known     bool
	QueueMs   float64
	ComputeMs float64
	BatchSize int
	Replica   string
	Worker    string
}

// Outcome is what a Sender saw of one request.
type Outcome struct {
	Result Result
	// Status is the HTTP status ("200", "503"), the gRPC code
	// ("Unavailable") or a short cause ("timeout", "error").
	Status string
	// Variant is the variant that served an answered request, when the
	// answer says ("" otherwise).
	Variant string
	// Served is the server's own account of where an answered request
	// spent its time, when the answer gives one (infaas's answers do).
	Served Timing
	// Err is the error of a request not answered, for the log.
	Err error
}
