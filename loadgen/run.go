package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infaas/infaas/workload"
)

// Defaults of Config.
const (
	DefaultMaxInFlight = 4096
	// DefaultTimeout bounds a request without a latency target.
	DefaultTimeout = 10 * time.Second
	// A request with a target waits targetTimeoutFactor × its target, at
	// least minTimeout.
	targetTimeoutFactor = 10
	minTimeout          = time.Second
)

// Config is one run.
type Config struct {
	Schedule Schedule
	// ScheduleName is how the schedule was written, for the summary.
	ScheduleName string
	Arrivals     ArrivalKind // default Poisson
	Seed         uint64      // arrivals and mix draws; one seed, one sequence
	Mix          Mix
	Sender       Sender
	// MaxInFlight bounds the requests awaiting an answer; an arrival over
	// it is dropped by the generator, never delayed. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// MaxRequests stops the run after this many arrivals (0: no limit).
	MaxRequests int
	// Timeout bounds every request; 0: 10 × its set's latency target, at
	// least 1 s, or DefaultTimeout for a set without a target.
	Timeout time.Duration
	// OnRow, if set, receives each second's row as soon as the second is
	// over, in order, from one goroutine at a time.
	OnRow func(Row)
}

func (c Config) withDefaults() (Config, error) {
	if c.Arrivals == "" {
		c.Arrivals = Poisson
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	switch {
	case c.Schedule == nil || c.Schedule.Duration() <= 0:
		return c, errors.New("loadgen: the schedule is missing or lasts no time")
	case c.Sender == nil:
		return c, errors.New("loadgen: no sender")
	case c.MaxInFlight < 0 || c.MaxRequests < 0 || c.Timeout < 0:
		return c, errors.New("loadgen: the in-flight bound, request bound and timeout must not be negative")
	}
	if _, err := ParseArrivalKind(string(c.Arrivals)); err != nil {
		return c, fmt.Errorf("loadgen: %w", err)
	}
	if err := c.Mix.Validate(); err != nil {
		return c, fmt.Errorf("loadgen: %w", err)
	}
	return c, nil
}

// timeoutFor is the timeout of a set's requests.
func (c Config) timeoutFor(s RequirementSet) time.Duration {
	switch {
	case c.Timeout > 0:
		return c.Timeout
	case s.Target() > 0:
		return max(targetTimeoutFactor*s.Target(), minTimeout)
	}
	return DefaultTimeout
}

// Run sends the load cfg describes and returns its summary and one row per
// second. It prepares each set's request first (an error there ends the
// run before any load), then sends one request per arrival on its own
// goroutine, never waiting for answers, and returns once every request
// has ended. A context ended early stops the arrivals and cancels the
// requests in flight; the summary says Interrupted.
//
// A Trace schedule is replayed: its recorded arrival times, whatever
// cfg.Arrivals says (the summary's Arrivals is Replayed), each arrival
// drawing its set from the mix as usual; an arrival with its own latency
// target is sent, timed and judged as its set with that target (each set
// is prepared once more for each distinct target, at most
// maxTraceTargets); the per-set summaries show the sets' own targets, the
// tightest target counts the trace's.
func Run(ctx context.Context, cfg Config) (Summary, []Row, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, nil, err
	}
	prepare := func(i int, set RequirementSet) (*Prepared, error) {
		p, err := cfg.Sender.Prepare(ctx, set)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", set.Label(), err)
		}
		p.Index, p.Timeout = i, cfg.timeoutFor(set)
		return p, nil
	}
	prepared := make([]*Prepared, len(cfg.Mix))
	for i, set := range cfg.Mix {
		if prepared[i], err = prepare(i, set); err != nil {
			return Summary{}, nil, err
		}
	}

	// The arrivals: a trace's as recorded, else drawn from the schedule.
	kind, tightest := cfg.Arrivals, cfg.Mix.Tightest()
	var next func() (TraceArrival, bool)
	var withTarget map[setTarget]*Prepared
	if tr, ok := traceOf(cfg.Schedule); ok {
		if withTarget, err = prepareTargets(tr, cfg.Mix, prepare); err != nil {
			return Summary{}, nil, err
		}
		for _, p := range withTarget {
			if d := p.Set.Target(); tightest == 0 || d < tightest {
				tightest = d
			}
		}
		kind, next = Replayed, NewTraceArrivals(tr).NextArrival
	} else {
		arrivals := NewArrivals(cfg.Schedule, cfg.Arrivals, rand.New(rand.NewPCG(cfg.Seed, 1)))
		next = func() (TraceArrival, bool) {
			at, ok := arrivals.Next()
			return TraceArrival{At: at}, ok
		}
	}

	col := newCollector(cfg.Schedule, cfg.Mix)
	pick, pickRNG := workload.NewPicker(cfg.Mix), rand.New(rand.NewPCG(cfg.Seed, 2))
	emit := func(rows []Row) {
		if cfg.OnRow != nil {
			for _, r := range rows {
				cfg.OnRow(r)
			}
		}
	}

	start := time.Now()
	reqCtx, cancelRequests := context.WithCancel(ctx)
	defer cancelRequests()
	stopTicks, ticksDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ticksDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopTicks:
				return
			case <-t.C:
				emit(col.closeBefore(int(time.Since(start) / time.Second)))
			}
		}
	}()

	var wg sync.WaitGroup
	var inFlight atomic.Int64
	send := func(p *Prepared) {
		defer wg.Done()
		defer inFlight.Add(-1)
		rctx, cancel := context.WithTimeout(reqCtx, p.Timeout)
		t0 := time.Now()
		o := cfg.Sender.Send(rctx, p)
		latency := time.Since(t0)
		cancel()
		col.done(time.Since(start), p.Index, p.Set.Target(), o, latency)
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	arrived := 0
	interrupted := false
loop:
	for cfg.MaxRequests == 0 || arrived < cfg.MaxRequests {
		arrival, ok := next()
		if !ok {
			break
		}
		at := arrival.At
		if wait := time.Until(start.Add(at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				interrupted = true
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			interrupted = true
			break
		}
		arrived++
		set := pick.Pick(pickRNG)
		p := prepared[set]
		if arrival.LatencyMs > 0 {
			p = withTarget[setTarget{set, arrival.LatencyMs}]
		}
		now := time.Since(start)
		if inFlight.Add(1) > int64(cfg.MaxInFlight) {
			inFlight.Add(-1)
			col.dropped(now)
			continue
		}
		col.sent(now, now-at, p.Index)
		wg.Add(1)
		go send(p)
	}
	timer.Stop()
	wg.Wait()
	elapsed := time.Since(start)
	close(stopTicks)
	<-ticksDone
	emit(col.closeAll())

	sum, rows := col.summary(elapsed)
	sum.Schedule = cfg.ScheduleName
	sum.Arrivals = kind
	sum.Seed = cfg.Seed
	sum.Interrupted = interrupted || ctx.Err() != nil
	sum.TightestTargetMs = ms(tightest)
	return sum, rows, nil
}

// maxTraceTargets bounds the distinct latency targets of a replayed trace:
// each one costs a Prepare per set.
const maxTraceTargets = 64

// setTarget is a set of the mix with a trace arrival's latency target.
type setTarget struct {
	set      int
	targetMs float64
}

// traceOf is the trace that s is, if it is one.
func traceOf(s Schedule) (Trace, bool) {
	switch tr := s.(type) {
	case Trace:
		return tr, true
	case *Trace:
		if tr != nil {
			return *tr, true
		}
	}
	return Trace{}, false
}

// prepareTargets prepares every set of the mix with each distinct latency
// target that tr's arrivals carry.
func prepareTargets(tr Trace, mix Mix, prepare func(int, RequirementSet) (*Prepared, error)) (map[setTarget]*Prepared, error) {
	var targets []float64 // in order of first use
	seen := map[float64]bool{}
	for _, a := range tr.Arrivals {
		if a.LatencyMs > 0 && !seen[a.LatencyMs] {
			if len(targets) == maxTraceTargets {
				return nil, fmt.Errorf("loadgen: the trace has over %d distinct latency targets; round them to fewer", maxTraceTargets)
			}
			seen[a.LatencyMs] = true
			targets = append(targets, a.LatencyMs)
		}
	}
	out := make(map[setTarget]*Prepared, len(targets)*len(mix))
	for i, set := range mix {
		for _, ms := range targets {
			set.LatencyMs = ms
			p, err := prepare(i, set)
			if err != nil {
				return nil, err
			}
			out[setTarget{i, ms}] = p
		}
	}
	return out, nil
}
