package batching

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrOverloaded: admission control refused the request (queue full, or
// its deadline cannot be met given the queued work). Try later or another
// replica. The worker returns this very error as worker.ErrOverloaded.
var ErrOverloaded = errors.New("replica overloaded; try later")

// Queued is what the decisions need to know about a waiting request.
type Queued struct {
	Arrived  time.Time
	Deadline time.Time // zero: none
	Samples  int
}

// CostModel predicts execution from a variant's profile.
type CostModel struct {
	// Exec is the predicted (p99) time to run a batch of n samples.
	Exec func(n int) time.Duration
	// Throughput is the samples per second one replica sustains at its
	// max batch; 0 if unknown.
	Throughput float64
}

// Plan is the batcher's next step: run the first N queued requests
// (Samples samples) now, or, when N is 0, wait up to Wait for more.
type Plan struct {
	N       int
	Samples int
	Wait    time.Duration
	Why     string
}

// timerSlack is how late a timer may fire.
const timerSlack = time.Millisecond

// PlanBatch decides whether to run the head of the queue now.
//
// The batch is the longest FIFO prefix of the queue that fits maxBatch. It
// runs at once when it is full, when the next request does not fit, when
// the replica is draining (nothing more will come), or when no request in
// it has a deadline (requests without a deadline batch with what is
// there). Otherwise it waits for more requests, but only while every
// request's slack allows it — it spends at most half of slack = deadline −
// arrival − predicted p99 of the batch one sample larger, keeping the other
// half for wake-up jitter and the way back — and never beyond maxDelay after the oldest
// request arrived. Each arrival re-plans, so the batch grows while slack
// lasts.
func PlanBatch(now time.Time, q []Queued, maxBatch int, maxDelay time.Duration, cost CostModel, draining bool) Plan {
	if len(q) == 0 {
		return Plan{}
	}
	n, s := 0, 0
	for n < len(q) && s+q[n].Samples <= maxBatch {
		s += q[n].Samples
		n++
	}
	if n == 0 { // admission keeps every request within maxBatch; be safe anyway
		return Plan{N: 1, Samples: q[0].Samples, Why: "oversized request runs alone"}
	}
	switch {
	case s >= maxBatch:
		return Plan{N: n, Samples: s, Why: "batch full"}
	case n < len(q):
		return Plan{N: n, Samples: s, Why: "next request does not fit"}
	case draining:
		return Plan{N: n, Samples: s, Why: "draining"}
	case maxDelay <= 0:
		return Plan{N: n, Samples: s, Why: "waiting disabled"}
	}
	until := q[0].Arrived.Add(maxDelay)
	why := "max queue delay reached"
	grown := cost.Exec(min(s+1, maxBatch))
	hasDeadline := false
	for _, r := range q[:n] {
		if r.Deadline.IsZero() {
			continue
		}
		hasDeadline = true
		// Spend at most half of the request's slack waiting: the rest
		// absorbs wake-up jitter and the answer's way back to the client.
		// Go's timers can fire up to a millisecond late on an idle
		// process (the scheduler sleeps with millisecond resolution), so
		// that much is kept back too.
		slack := r.Deadline.Sub(r.Arrived) - grown
		if latest := r.Arrived.Add(slack/2 - timerSlack); latest.Before(until) {
			until, why = latest, "no slack left"
		}
	}
	if !hasDeadline {
		return Plan{N: n, Samples: s, Why: "no deadline"}
	}
	if !now.Before(until) {
		return Plan{N: n, Samples: s, Why: why}
	}
	return Plan{Wait: until.Sub(now), Why: "waiting for more"}
}

// Expired says whether a queued request's deadline passed before its
// batch started: the worker sheds it (refuses it with ErrOverloaded)
// instead of answering it late, so the client can retry elsewhere at once.
func Expired(now time.Time, q Queued) bool {
	return !q.Deadline.IsZero() && now.After(q.Deadline)
}

// Admit decides whether a request of samples samples with deadline may
// join a queue that holds queuedSamples waiting and executingSamples
// running. It refuses with ErrOverloaded when the queue bound would be
// exceeded, or when the deadline cannot be met even if the request ran
// right after the work ahead of it: now + (queued + executing) ÷ throughput
// + p99 at its own batch > deadline.
func Admit(now time.Time, samples int, deadline time.Time, queuedSamples, executingSamples, bound int, cost CostModel) error {
	if queuedSamples+samples > bound {
		return fmt.Errorf("%w: queue full (%d of %d samples queued, request has %d)", ErrOverloaded, queuedSamples, bound, samples)
	}
	if deadline.IsZero() {
		return nil
	}
	var ahead time.Duration
	if cost.Throughput > 0 {
		ahead = time.Duration(float64(queuedSamples+executingSamples) / cost.Throughput * float64(time.Second))
	}
	finish := now.Add(ahead + cost.Exec(samples))
	if finish.After(deadline) {
		return fmt.Errorf("%w: deadline in %s cannot be met: %d samples ahead take %s and the request itself %s",
			ErrOverloaded, FormatMs(deadline.Sub(now)), queuedSamples+executingSamples, FormatMs(ahead), FormatMs(cost.Exec(samples)))
	}
	return nil
}

// ProfileCost builds the cost model from a profile's p99 curve (ms per
// batch) and its throughput, deriving the throughput from the curve at
// maxBatch when the profile has none.
func ProfileCost(p99At func(int) float64, throughputQPS float64, maxBatch int) CostModel {
	exec := func(n int) time.Duration {
		v := p99At(n)
		if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0
		}
		return time.Duration(v * float64(time.Millisecond))
	}
	tp := throughputQPS
	if tp <= 0 {
		if d := exec(maxBatch); d > 0 {
			tp = float64(maxBatch) / d.Seconds()
		}
	}
	return CostModel{Exec: exec, Throughput: tp}
}

// FormatMs formats a duration in milliseconds with sensible precision;
// the worker words its messages with it too.
func FormatMs(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f ms", v)
	case v >= 0.1 || v <= -0.1:
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.3f ms", v)
}
