package loadgen

import (
	"math"
	"sync"
	"time"
)

// Row is one second of a run. Sent and Dropped count arrivals in the second
// they arrived; Answered, Refused, Failed, Violations, the latencies and the
// variants count requests in the second they ended.
type Row struct {
	Second     int     `json:"second"`
	Offered    float64 `json:"offered_qps"` // the schedule's mean rate over the second
	Sent       int     `json:"sent"`
	Dropped    int     `json:"dropped"` // arrivals the generator dropped at its in-flight bound
	Answered   int     `json:"answered"`
	Refused    int     `json:"refused"`
	Failed     int     `json:"failed"`
	Violations int     `json:"violations"`
	P50Ms      float64 `json:"p50_ms"` // of the answered requests; 0 when none
	P99Ms      float64 `json:"p99_ms"`
	// Variants counts answered requests by the variant that served them
	// (those whose answer did not say are left out).
	Variants map[string]int `json:"variants,omitempty"`
}

// SetSummary is one requirement set's share of a run.
type SetSummary struct {
	Label      string  `json:"label"`
	Sent       int     `json:"sent"`
	Answered   int     `json:"answered"`
	Refused    int     `json:"refused"`
	Failed     int     `json:"failed"`
	Violations int     `json:"violations"`
	TargetMs   float64 `json:"target_ms,omitempty"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
}

// Summary is a whole run's figures.
type Summary struct {
	Schedule string      `json:"schedule,omitempty"`
	Arrivals ArrivalKind `json:"arrivals"`
	Seed     uint64      `json:"seed"`
	// DurationS is the schedule's length, ElapsedS the run's, from the
	// start until every request had ended, in seconds.
	DurationS   float64 `json:"duration_s"`
	ElapsedS    float64 `json:"elapsed_s"`
	Interrupted bool    `json:"interrupted,omitempty"` // the context ended the run early

	Sent     int `json:"sent"`
	Dropped  int `json:"dropped"` // arrivals over the in-flight bound, never sent
	Answered int `json:"answered"`
	Refused  int `json:"refused"`
	Failed   int `json:"failed"`
	// Violations are answered requests slower than their own latency
	// target; ViolationRate is their share of the answered ones.
	Violations    int     `json:"violations"`
	ViolationRate float64 `json:"violation_rate"`
	// Latencies of answered requests, end to end as the generator saw them.
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MeanMs float64 `json:"mean_ms"`
	MaxMs  float64 `json:"max_ms"`
	// OfferedQPS is sent ÷ duration; ThroughputQPS is answered ÷ elapsed.
	OfferedQPS    float64 `json:"offered_qps"`
	ThroughputQPS float64 `json:"throughput_qps"`
	// TightestTargetMs is the mix's smallest latency target (0: none).
	TightestTargetMs float64 `json:"tightest_target_ms,omitempty"`
	// MaxLagMs is how late the generator sent its latest arrival: large
	// values mean the generating machine could not keep the schedule.
	MaxLagMs float64 `json:"max_lag_ms"`
	// Statuses counts ends by HTTP status, gRPC code or cause ("timeout").
	Statuses map[string]int `json:"statuses"`
	// Variants counts answered requests by serving variant.
	Variants map[string]int `json:"variants,omitempty"`
	// Where the answers' time went by the server's own account, over
	// the Timed answers that gave one: mean time queued in a worker
	// (batching included), computing there, and the rest of their
	// latency — outside the workers (the network, HTTP or gRPC, the
	// controller, the generator itself).
	Timed         int          `json:"timed,omitempty"`
	QueueMeanMs   float64      `json:"queue_mean_ms,omitempty"`
	ComputeMeanMs float64      `json:"compute_mean_ms,omitempty"`
	OutsideMeanMs float64      `json:"outside_mean_ms,omitempty"`
	Sets          []SetSummary `json:"sets"`
}

// collector gathers a run's events. Seconds are closed in order once time
// has passed them; an event that arrives for a closed second counts in the
// first open one.
type collector struct {
	mu       sync.Mutex
	sched    Schedule
	open     map[int]*second
	closed   int // seconds before this are in rows
	rows     []Row
	total    Histogram
	sets     []setStats
	sum      Summary
	variants map[string]int
	statuses map[string]int
	maxLag   time.Duration
	// sums over the answers that gave their timing, in ms
	timedQueue, timedCompute, timedLatency float64
}

type second struct {
	row  Row
	hist Histogram
}

type setStats struct {
	SetSummary
	hist Histogram
}

func newCollector(sched Schedule, mix Mix) *collector {
	c := &collector{
		sched:    sched,
		open:     map[int]*second{},
		sets:     make([]setStats, len(mix)),
		variants: map[string]int{},
		statuses: map[string]int{},
	}
	for i, s := range mix {
		c.sets[i].Label = s.Label()
		c.sets[i].TargetMs = s.LatencyMs
	}
	return c
}

// at returns the open second of time t; the caller holds mu.
func (c *collector) at(t time.Duration) *second {
	n := max(int(t/time.Second), c.closed)
	s, ok := c.open[n]
	if !ok {
		s = &second{row: Row{Second: n}}
		c.open[n] = s
	}
	return s
}

func (c *collector) sent(t, lag time.Duration, set int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at(t).row.Sent++
	c.sum.Sent++
	c.sets[set].Sent++
	c.maxLag = max(c.maxLag, lag)
}

func (c *collector) dropped(t time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at(t).row.Dropped++
	c.sum.Dropped++
}

// done records a request that ended at t after latency, of set with target.
func (c *collector) done(t time.Duration, set int, target time.Duration, o Outcome, latency time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.at(t)
	st := &c.sets[set]
	c.statuses[o.Status]++
	switch o.Result {
	case Answered:
		s.row.Answered++
		c.sum.Answered++
		st.Answered++
		s.hist.Record(latency)
		c.total.Record(latency)
		st.hist.Record(latency)
		if target > 0 && latency > target {
			s.row.Violations++
			c.sum.Violations++
			st.Violations++
		}
		if t := o.Served; t.Known {
			c.sum.Timed++
			c.timedQueue += t.QueueMs
			c.timedCompute += t.ComputeMs
			c.timedLatency += ms(latency)
		}
		if o.Variant != "" {
			if s.row.Variants == nil {
				s.row.Variants = map[string]int{}
			}
			s.row.Variants[o.Variant]++
			c.variants[o.Variant]++
		}
	case Refused:
		s.row.Refused++
		c.sum.Refused++
		st.Refused++
	default:
		s.row.Failed++
		c.sum.Failed++
		st.Failed++
	}
}

// closeBefore closes the seconds before n and returns their rows.
func (c *collector) closeBefore(n int) []Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Row
	for ; c.closed < n; c.closed++ {
		s, ok := c.open[c.closed]
		if !ok {
			s = &second{row: Row{Second: c.closed}}
		}
		delete(c.open, c.closed)
		from := time.Duration(c.closed) * time.Second
		s.row.Offered = MeanRate(c.sched, from, from+time.Second)
		s.row.P50Ms = ms(s.hist.Quantile(0.50))
		s.row.P99Ms = ms(s.hist.Quantile(0.99))
		c.rows = append(c.rows, s.row)
		out = append(out, s.row)
	}
	return out
}

// closeAll closes every second up to the schedule's end and the last open
// one, and returns the rows it closed.
func (c *collector) closeAll() []Row {
	c.mu.Lock()
	n := int(math.Ceil(c.sched.Duration().Seconds()))
	for s := range c.open {
		n = max(n, s+1)
	}
	c.mu.Unlock()
	return c.closeBefore(n)
}

// summary returns the run's figures once every request has ended, elapsed
// after the start.
func (c *collector) summary(elapsed time.Duration) (Summary, []Row) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sum
	s.DurationS = c.sched.Duration().Seconds()
	s.ElapsedS = elapsed.Seconds()
	if s.Answered > 0 {
		s.ViolationRate = float64(s.Violations) / float64(s.Answered)
	}
	s.P50Ms = ms(c.total.Quantile(0.50))
	s.P99Ms = ms(c.total.Quantile(0.99))
	s.P999Ms = ms(c.total.Quantile(0.999))
	s.MeanMs = ms(c.total.Mean())
	s.MaxMs = ms(c.total.Max())
	if s.DurationS > 0 {
		s.OfferedQPS = float64(s.Sent) / s.DurationS
	}
	if s.ElapsedS > 0 {
		s.ThroughputQPS = float64(s.Answered) / s.ElapsedS
	}
	s.MaxLagMs = ms(c.maxLag)
	if n := float64(s.Timed); n > 0 {
		s.QueueMeanMs, s.ComputeMeanMs = c.timedQueue/n, c.timedCompute/n
		s.OutsideMeanMs = max(c.timedLatency/n-s.QueueMeanMs-s.ComputeMeanMs, 0)
	}
	s.Statuses = c.statuses
	if len(c.variants) > 0 {
		s.Variants = c.variants
	}
	s.Sets = make([]SetSummary, len(c.sets))
	for i, st := range c.sets {
		s.Sets[i] = st.SetSummary
		s.Sets[i].P50Ms = ms(st.hist.Quantile(0.50))
		s.Sets[i].P99Ms = ms(st.hist.Quantile(0.99))
	}
	return s, c.rows
}
