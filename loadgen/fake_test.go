package loadgen

import (
	"context"
	"sync/atomic"
)

// fakeSender prepares every set and answers each Send with send's outcome.
type fakeSender struct {
	send     func(ctx context.Context, p *Prepared) Outcome
	prepared atomic.Int64
	sent     atomic.Int64
}

var _ Sender = (*fakeSender)(nil)

func (f *fakeSender) Prepare(_ context.Context, set RequirementSet) (*Prepared, error) {
	f.prepared.Add(1)
	return &Prepared{Set: set, Body: set.Model}, nil
}

func (f *fakeSender) Send(ctx context.Context, p *Prepared) Outcome {
	f.sent.Add(1)
	return f.send(ctx, p)
}

func answer(variant string) func(context.Context, *Prepared) Outcome {
	return func(context.Context, *Prepared) Outcome {
		return Outcome{Result: Answered, Status: "200", Variant: variant}
	}
}
