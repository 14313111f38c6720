package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
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
func Run(ctx context.Context, cfg Config) (Summary, []Row, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, nil, err
	}
	prepared := make([]*Prepared, len(cfg.Mix))
	for i, set := range cfg.Mix {
		p, err := cfg.Sender.Prepare(ctx, set)
		if err != nil {
			return Summary{}, nil, fmt.Errorf("prepare %s: %w", set.Label(), err)
		}
		p.Index, p.Timeout = i, cfg.timeoutFor(set)
		prepared[i] = p
	}

	col := newCollector(cfg.Schedule, cfg.Mix)
	arrivals := NewArrivals(cfg.Schedule, cfg.Arrivals, rand.New(rand.NewPCG(cfg.Seed, 1)))
	pick, pickRNG := newPicker(cfg.Mix), rand.New(rand.NewPCG(cfg.Seed, 2))
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
		at, ok := arrivals.Next()
		if !ok {
			break
		}
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
		p := prepared[pick.pick(pickRNG)]
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
	sum.Arrivals = cfg.Arrivals
	sum.Seed = cfg.Seed
	sum.Interrupted = interrupted || ctx.Err() != nil
	sum.TightestTargetMs = ms(cfg.Mix.Tightest())
	return sum, rows, nil
}
