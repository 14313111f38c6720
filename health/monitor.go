package health

import (
	"math"
	"sync"
	"time"
)

// Stats is one replica's recent behaviour over the monitor's sliding
// window (10 s by default), plus its queue right now.
type Stats struct {
	Window time.Duration `json:"window"` // span the rates are computed over

	Arrivals  int64 `json:"arrivals"`  // requests admitted
	Refused   int64 `json:"refused"`   // requests refused by admission control
	Dropped   int64 `json:"dropped"`   // requests cancelled while queued
	Completed int64 `json:"completed"` // requests answered (including failures)
	Failed    int64 `json:"failed"`    // requests whose batch failed

	QPS                 float64 `json:"qps"`                   // completed requests per second
	InferencesPerSecond float64 `json:"inferences_per_second"` // completed samples per second

	Batches  int64   `json:"batches"`   // executed batches
	AvgBatch float64 `json:"avg_batch"` // samples per executed batch
	MaxBatch int     `json:"max_batch"` // largest executed batch

	// Latency is end to end inside the worker (admission to answer);
	// Compute is one ONNX Runtime run, per batch.
	LatencyP50 time.Duration `json:"latency_p50"`
	LatencyP99 time.Duration `json:"latency_p99"`
	ComputeP50 time.Duration `json:"compute_p50"`
	ComputeP99 time.Duration `json:"compute_p99"`
	// ComputeMean is the mean ONNX Runtime run with the slowest
	// MeanTrim of runs left out: what the replica's capacity follows (a
	// neighbour that preempts half the runs by a time slice may leave
	// the p99 near a noisy profile's while the mean, and the throughput,
	// fall to a third), and what one stalled run does not move.
	ComputeMean time.Duration `json:"compute_mean"`

	// RecentArrivals counts the requests that arrived (admitted or
	// refused) in the last RecentWindow — the current bucket and the one
	// before it — so that demand can be read at once when load rises,
	// while the rates above move over the whole window.
	RecentArrivals int64         `json:"recent_arrivals"`
	RecentWindow   time.Duration `json:"recent_window"`
	// RecentBatches and RecentComputeMean are the runs (warm-up runs
	// excluded) and their ComputeMean over RecentWindow, so that a
	// neighbour shows within seconds rather than once it fills the window;
	// RecentAvgBatch is AvgBatch over RecentWindow, the batch that mean
	// is judged at (a rising load batches more than the window's average).
	RecentBatches     int64         `json:"recent_batches"`
	RecentComputeMean time.Duration `json:"recent_compute_mean"`
	RecentAvgBatch    float64       `json:"recent_avg_batch"`

	// Slowness is how many times slower than its profile the replica has
	// run lately: observed compute ÷ profiled median, smoothed over about
	// five batches (1 before any batch). The dispatcher scales its
	// estimates by it. Snapshot leaves it 0: whoever runs the replica
	// fills it in (the worker from the slowness its cost model tracks).
	Slowness float64 `json:"slowness,omitempty"`

	Queued    int `json:"queued"`     // samples waiting now
	Executing int `json:"executing"`  // samples running now
	MaxQueued int `json:"max_queued"` // most samples waiting at once in the window

	// Asked is what the window's requests asked of the replica
	// (Monitor.Asked).
	Asked Asked `json:"asked"`
}

// Outstanding is the work received and not finished, in samples (INFaaS's
// received − completed).
func (s Stats) Outstanding() int { return s.Queued + s.Executing }

// Monitor keeps a ring of time buckets; a snapshot sums the buckets of the
// window. Safe for concurrent use.
type Monitor struct {
	mu      sync.Mutex
	now     func() time.Time
	width   time.Duration
	ring    []bucket
	created time.Time
	ran     int // batches recorded since creation
}

// WarmupBatches is how many of a replica's first batches are warm-up: they
// count as served, but their compute times stay out of the window the
// interference rule reads (a fresh ONNX Runtime session's first runs are
// several times slower than its profile — allocation, caches — and would
// flag every new replica interfered).
const WarmupBatches = 10

type bucket struct {
	index                                         int64 // time / width; the slot is stale when it differs
	arrivals, refused, dropped, completed, failed int64
	samples, batches, batchSamples                int64
	maxBatch, maxQueued                           int
	latency, compute                              histogram
	asked                                         Asked
}

// NewMonitor returns a monitor over a sliding window of window, rounded up
// to whole buckets of width, that reads the time from now.
func NewMonitor(now func() time.Time, window, width time.Duration) *Monitor {
	n := int((window + width - 1) / width)
	return &Monitor{now: now, width: width, ring: make([]bucket, n), created: now()}
}

// slot returns the current bucket, resetting it when it last held an
// older period. Call with mu held.
func (m *Monitor) slot(t time.Time) *bucket {
	idx := t.UnixNano() / int64(m.width)
	b := &m.ring[int(idx%int64(len(m.ring)))]
	if b.index != idx {
		*b = bucket{index: idx}
	}
	return b
}

// Admitted records a request that asked a admitted to a queue now holding
// queued samples.
func (m *Monitor) Admitted(queued int, a Asked) {
	m.mu.Lock()
	b := m.slot(m.now())
	b.arrivals++
	b.maxQueued = max(b.maxQueued, queued)
	b.asked = b.asked.Merge(a)
	m.mu.Unlock()
}

// Refused records a request refused by admission control (or
// shed from the queue: Asked{}, its asking was recorded on admission).
func (m *Monitor) Refused(a Asked) {
	m.mu.Lock()
	b := m.slot(m.now())
	b.refused++
	b.asked = b.asked.Merge(a)
	m.mu.Unlock()
}

// Dropped records a request cancelled while queued.
func (m *Monitor) Dropped() {
	m.mu.Lock()
	m.slot(m.now()).dropped++
	m.mu.Unlock()
}

// Batch records one executed batch and its requests' end-to-end latencies.
func (m *Monitor) Batch(samples int, compute time.Duration, latencies []time.Duration, failed bool) {
	m.mu.Lock()
	b := m.slot(m.now())
	b.batches++
	b.batchSamples += int64(samples)
	b.maxBatch = max(b.maxBatch, samples)
	if m.ran >= WarmupBatches {
		b.compute.add(compute)
	}
	m.ran++
	b.completed += int64(len(latencies))
	b.samples += int64(samples)
	if failed {
		b.failed += int64(len(latencies))
	}
	for _, l := range latencies {
		b.latency.add(l)
	}
	m.mu.Unlock()
}

// Snapshot sums the window. queued and executing are the replica's
// current queue, which the monitor does not track itself.
func (m *Monitor) Snapshot(queued, executing int) Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	cur := now.UnixNano() / int64(m.width)
	oldest := cur - int64(len(m.ring)) + 1
	var s Stats
	var lat, comp histogram
	var samples, batchSamples int64
	var recent histogram
	var recentBatches, recentBatchSamples int64
	for i := range m.ring {
		b := &m.ring[i]
		if b.index < oldest || b.index > cur {
			continue
		}
		s.Arrivals += b.arrivals
		s.Refused += b.refused
		if b.index >= cur-1 {
			s.RecentArrivals += b.arrivals + b.refused
			recent.merge(&b.compute)
			recentBatches += b.batches
			recentBatchSamples += b.batchSamples
		}
		s.Dropped += b.dropped
		s.Completed += b.completed
		s.Failed += b.failed
		s.Batches += b.batches
		samples += b.samples
		batchSamples += b.batchSamples
		s.MaxBatch = max(s.MaxBatch, b.maxBatch)
		s.MaxQueued = max(s.MaxQueued, b.maxQueued)
		lat.merge(&b.latency)
		comp.merge(&b.compute)
		s.Asked = s.Asked.Merge(b.asked)
	}
	// The window: the full buckets behind the current one plus the elapsed
	// part of the current one, no longer than the replica has existed and
	// never shorter than one bucket (a young replica's rates read low
	// rather than absurdly high).
	span := time.Duration(len(m.ring)-1)*m.width + time.Duration(now.UnixNano()-cur*int64(m.width))
	span = min(span, now.Sub(m.created))
	span = max(span, m.width)
	s.Window = span
	s.RecentWindow = min(m.width+time.Duration(now.UnixNano()-cur*int64(m.width)), span)
	s.QPS = float64(s.Completed) / span.Seconds()
	s.InferencesPerSecond = float64(samples) / span.Seconds()
	if s.Batches > 0 {
		s.AvgBatch = float64(batchSamples) / float64(s.Batches)
	}
	s.LatencyP50, s.LatencyP99 = lat.quantile(0.50), lat.quantile(0.99)
	s.ComputeP50, s.ComputeP99 = comp.quantile(0.50), comp.quantile(0.99)
	s.ComputeMean = comp.trimmedMean(MeanTrim)
	s.RecentBatches, s.RecentComputeMean = int64(recent.total), recent.trimmedMean(MeanTrim)
	if recentBatches > 0 {
		s.RecentAvgBatch = float64(recentBatchSamples) / float64(recentBatches)
	}
	s.Queued, s.Executing = queued, executing
	s.MaxQueued = max(s.MaxQueued, queued)
	return s
}

// histogram counts durations in logarithmic bins 4% wide from 1 µs to
// about 100 s, so quantiles are within 4% and merging is a sum. lo and hi
// bound the bins in use (when total > 0): a replica's runs fill a few
// dozen of the 480, and merges and scans read only those.
type histogram struct {
	counts [histBins]uint32
	total  uint64
	lo, hi int
}

const (
	histBins   = 480
	histGrowth = 1.04
)

var histLogGrowth = math.Log(histGrowth)

// histBin is the bin of d: ⌈log₁.₀₄(d in µs)⌉, 0 at 1 µs and below, the
// last bin beyond it. Every answer and batch is binned, on the worker and
// in the simulator, so it reads the bin off histFloor — an estimate from
// d's binary exponent, moved at most a step or two — instead of taking a
// logarithm; histBinExact is the definition, and the two agree on every
// duration (TestHistBinMatchesDefinition).
func histBin(d time.Duration) int {
	if d <= time.Microsecond {
		return 0
	}
	// log₂ d ≈ exponent + mantissa (off by < 0.09), over log₂ 1.04, less
	// log₂ 1000 (ns to µs).
	bits := math.Float64bits(float64(d))
	log2 := float64(int(bits>>52&0x7ff)-1023) + float64(bits&(1<<52-1))/(1<<52)
	i := min(max(int((log2-log2Micro)*histBinsPerOctave), 1), histBins-1)
	for i+1 < histBins && d >= histFloor[i+1] {
		i++
	}
	for i > 1 && d < histFloor[i] {
		i--
	}
	return i
}

func histBinExact(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	i := int(math.Ceil(math.Log(us) / histLogGrowth))
	return min(i, histBins-1)
}

// histBinsPerOctave is how many bins a doubling spans; log2Micro is
// log₂ of a microsecond in ns.
var histBinsPerOctave, log2Micro = math.Ln2 / histLogGrowth, math.Log2(float64(time.Microsecond))

// histFloor[i] is the least duration in bin i (i ≥ 1), by histBinExact.
var histFloor = func() (f [histBins]time.Duration) {
	for i := 1; i < histBins; i++ {
		d := time.Duration(math.Pow(histGrowth, float64(i-1)) * float64(time.Microsecond))
		for d > 1 && histBinExact(d-1) >= i {
			d--
		}
		for histBinExact(d) < i {
			d++
		}
		f[i] = d
	}
	return f
}()

// histUpper is the upper edge of bin i.
func histUpper(i int) time.Duration { return histUppers[i] }

var histUppers = func() (u [histBins]time.Duration) {
	for i := range u {
		u[i] = time.Duration(math.Pow(histGrowth, float64(i)) * float64(time.Microsecond))
	}
	return u
}()

func (h *histogram) add(d time.Duration) {
	i := histBin(d)
	if h.total == 0 {
		h.lo, h.hi = i, i
	}
	h.lo, h.hi = min(h.lo, i), max(h.hi, i)
	h.counts[i]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	if o.total == 0 {
		return
	}
	if h.total == 0 {
		h.lo, h.hi = o.lo, o.hi
	}
	h.lo, h.hi = min(h.lo, o.lo), max(h.hi, o.hi)
	for i := o.lo; i <= o.hi; i++ {
		h.counts[i] += o.counts[i]
	}
	h.total += o.total
}

// MeanTrim is the fraction of the slowest runs ComputeMean leaves out.
const MeanTrim = 0.05

// trimmedMean is the mean of the values with the largest fraction trim
// of them left out, each counted at its bin's geometric centre (within 2%);
// 0 when empty.
func (h *histogram) trimmedMean(trim float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	keep := max(uint64(math.Ceil((1-trim)*float64(h.total))), 1)
	var n uint64
	var sum float64
	for i := h.lo; i <= h.hi; i++ {
		take := min(uint64(h.counts[i]), keep-n)
		sum += float64(take) * float64(histUpper(i)) / math.Sqrt(histGrowth)
		if n += take; n >= keep {
			break
		}
	}
	return time.Duration(sum / float64(n))
}

// quantile returns the upper edge of the bin holding quantile q (0 when
// empty): an estimate that errs high by at most one bin.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i := h.lo; i <= h.hi; i++ {
		if seen += uint64(h.counts[i]); seen >= rank {
			return histUpper(i)
		}
	}
	return histUpper(h.hi)
}
