package health

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestMonitorWindow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	m := NewMonitor(clk.now, 10*time.Second, time.Second)

	// 10 s of steady load: 100 requests a second in batches of 4; the
	// first second's runs (which leave the window) take 20 ms, the rest 2.
	for sec := range 10 {
		compute := 2 * time.Millisecond
		if sec == 0 {
			compute = 20 * time.Millisecond
		}
		for range 25 {
			for range 4 {
				m.Admitted(3, Asked{})
			}
			m.Batch(4, compute, []time.Duration{3 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond, 9 * time.Millisecond}, false)
		}
		m.Refused(Asked{})
		clk.advance(time.Second)
	}
	// Now is the start of second 10: the window is the 9 full buckets of
	// seconds 1–9 plus the empty current one, so second 0 has left it.
	s := m.Snapshot(5, 4)
	if s.Completed != 900 || s.Batches != 225 || s.AvgBatch != 4 || s.MaxBatch != 4 || s.Refused != 9 || s.Arrivals != 900 {
		t.Errorf("counts: %+v", s)
	}
	if s.Window != 9*time.Second || s.QPS != 100 || s.InferencesPerSecond != 100 {
		t.Errorf("window %v, qps %v, inferences/s %v; want 9s, 100, 100", s.Window, s.QPS, s.InferencesPerSecond)
	}
	near := func(got, want time.Duration) bool { return math.Abs(float64(got-want)) <= 0.05*float64(want) }
	if !near(s.LatencyP50, 3*time.Millisecond) || !near(s.LatencyP99, 9*time.Millisecond) || !near(s.ComputeP99, 2*time.Millisecond) {
		t.Errorf("latency p50 %v p99 %v compute p99 %v", s.LatencyP50, s.LatencyP99, s.ComputeP99)
	}
	if !near(s.ComputeMean, 2*time.Millisecond) {
		t.Errorf("compute mean %v, want 2ms: the window's runs alone", s.ComputeMean)
	}
	if s.RecentBatches != 25 || !near(s.RecentComputeMean, 2*time.Millisecond) || s.RecentAvgBatch != 4 {
		t.Errorf("recent: %d batches of %.1f, mean %v; want second 9's 25 of 4 at 2ms", s.RecentBatches, s.RecentAvgBatch, s.RecentComputeMean)
	}
	if s.Queued != 5 || s.Executing != 4 || s.Outstanding() != 9 || s.MaxQueued != 5 {
		t.Errorf("queue: %+v", s)
	}

	// Half a second into second 15: seconds 6–9 remain, over 9.5 s.
	clk.advance(5*time.Second + 500*time.Millisecond)
	s = m.Snapshot(0, 0)
	if s.Completed != 400 || s.Refused != 4 || s.MaxQueued != 3 {
		t.Errorf("after sliding: completed %d refused %d max queued %d, want 400, 4, 3", s.Completed, s.Refused, s.MaxQueued)
	}
	if s.Window != 9500*time.Millisecond || math.Abs(s.QPS-400/9.5) > 1e-9 {
		t.Errorf("window %v, qps %v; want 9.5s, %v", s.Window, s.QPS, 400/9.5)
	}
	clk.advance(20 * time.Second)
	if s := m.Snapshot(0, 0); s.Completed != 0 || s.Batches != 0 || s.LatencyP99 != 0 {
		t.Errorf("after the window passed: %+v", s)
	}
}

// A replica younger than the window has its rates computed over its age
// (but at least one bucket).
func TestMonitorYoungReplica(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 500_000_000)}
	m := NewMonitor(clk.now, 10*time.Second, time.Second)
	clk.advance(2 * time.Second)
	for range 100 {
		m.Batch(1, time.Millisecond, []time.Duration{time.Millisecond}, false)
	}
	s := m.Snapshot(0, 0)
	if s.Window != 2*time.Second || s.QPS != 50 {
		t.Errorf("young replica: window %v, qps %v; want 2s, 50", s.Window, s.QPS)
	}
	m2 := NewMonitor(clk.now, 10*time.Second, time.Second)
	m2.Batch(1, time.Millisecond, []time.Duration{time.Millisecond}, false)
	if s := m2.Snapshot(0, 0); s.Window != time.Second || s.QPS != 1 {
		t.Errorf("brand-new replica: window %v, qps %v; want the 1 s floor", s.Window, s.QPS)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.99) != 0 {
		t.Error("empty histogram has a quantile")
	}
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > 1.041*float64(tc.want) {
			t.Errorf("q%v = %v, want %v within +4%%", tc.q, got, tc.want)
		}
	}
	var huge histogram
	huge.add(time.Hour)
	huge.add(0)
	if huge.quantile(1) < 90*time.Second || huge.quantile(0) != time.Microsecond {
		t.Errorf("extremes: %v %v", huge.quantile(1), huge.quantile(0))
	}
}

// TestMonitorRecent: the recent count covers the current bucket and the one
// before it, so a jump in arrivals shows at once while the window's rates
// still average it away.
func TestMonitorRecent(t *testing.T) {
	clk := &fakeClock{t: time.Unix(2_000_000, 0)}
	m := NewMonitor(clk.now, 10*time.Second, time.Second)
	for range 9 { // 9 s at 10/s
		for range 10 {
			m.Admitted(0, Asked{})
		}
		clk.advance(time.Second)
	}
	for range 150 { // then 200/s: 150 admitted, 50 refused in half a second
		m.Admitted(0, Asked{})
	}
	for range 50 {
		m.Refused(Asked{})
	}
	clk.advance(500 * time.Millisecond)
	s := m.Snapshot(0, 0)
	if s.RecentWindow != 1500*time.Millisecond || s.RecentArrivals != 10+200 {
		t.Fatalf("recent: %d arrivals over %v, want 210 over 1.5s", s.RecentArrivals, s.RecentWindow)
	}
	if rate := float64(s.Arrivals+s.Refused) / s.Window.Seconds(); rate > 40 {
		t.Fatalf("the window's rate %v should still average the jump away", rate)
	}
}

// TestMonitorWarmup: a fresh replica's first batches are slow; their
// compute times stay out of the window, so they flag nothing.
func TestMonitorWarmup(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	m := NewMonitor(clk.now, 10*time.Second, time.Second)
	for i := range WarmupBatches + 40 {
		d := time.Millisecond
		if i < WarmupBatches {
			d = 50 * time.Millisecond
		}
		m.Batch(1, d, []time.Duration{d}, false)
		clk.advance(10 * time.Millisecond)
	}
	s := m.Snapshot(0, 0)
	if s.Batches != int64(WarmupBatches+40) {
		t.Errorf("batches %d, want every one counted", s.Batches)
	}
	if s.ComputeP99 > 2*time.Millisecond {
		t.Errorf("compute p99 %v: the warm-up batches' 50 ms leaked into the window", s.ComputeP99)
	}
	if d := s.ComputeMean - time.Millisecond; d < -20*time.Microsecond || d > 20*time.Microsecond {
		t.Errorf("compute mean %v, want 1ms: the warm-up batches' 50 ms leaked into it", s.ComputeMean)
	}
}

// TestComputeMean: the mean follows a neighbour that preempts every other
// run, and leaves out a single stalled run.
func TestComputeMean(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	m := NewMonitor(clk.now, 10*time.Second, time.Second)
	for range WarmupBatches {
		m.Batch(1, time.Millisecond, []time.Duration{time.Millisecond}, false)
	}
	for i := range 40 {
		d := time.Millisecond
		if i == 7 {
			d = time.Second // a host stall in one run
		}
		m.Batch(1, d, []time.Duration{d}, false)
	}
	if s := m.Snapshot(0, 0); s.ComputeMean < 950*time.Microsecond || s.ComputeMean > 1050*time.Microsecond {
		t.Errorf("mean %v with one stalled run among 40 at 1 ms: the stall moved it", s.ComputeMean)
	}
	// Two seconds later, every other run loses a 6 ms slice.
	clk.advance(2 * time.Second)
	for i := range 40 {
		d := time.Millisecond
		if i%2 == 1 {
			d = 7 * time.Millisecond
		}
		m.Batch(1, d, []time.Duration{d}, false)
	}
	s := m.Snapshot(0, 0)
	if s.RecentBatches != 40 || s.RecentComputeMean < 3400*time.Microsecond || s.RecentComputeMean > 4100*time.Microsecond {
		t.Errorf("recent: %d runs, mean %v; want the 40 preempted ones, about 3.7 ms (the two slowest left out)", s.RecentBatches, s.RecentComputeMean)
	}
	if s.ComputeMean > 3*time.Millisecond {
		t.Errorf("window mean %v: the window also holds the 40 earlier 1 ms runs", s.ComputeMean)
	}
}

// TestHistogramRange: merges and scans read only the bins in use, and
// give what a scan of every bin would.
func TestHistogramRange(t *testing.T) {
	var a, b, m histogram
	for _, d := range []time.Duration{2 * time.Millisecond, 3 * time.Millisecond} {
		a.add(d)
	}
	for _, d := range []time.Duration{500 * time.Microsecond, 40 * time.Millisecond, 40 * time.Millisecond} {
		b.add(d)
	}
	m.merge(&histogram{}) // an empty one changes nothing
	m.merge(&a)
	m.merge(&b)
	if m.total != 5 || m.lo != histBin(500*time.Microsecond) || m.hi != histBin(40*time.Millisecond) {
		t.Fatalf("total %d, bins %d–%d", m.total, m.lo, m.hi)
	}
	near := func(got, want time.Duration) bool { return math.Abs(float64(got-want)) <= 0.04*float64(want) }
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, 500 * time.Microsecond}, {0.2, 500 * time.Microsecond}, {0.5, 3 * time.Millisecond}, {1, 40 * time.Millisecond}} {
		if got := m.quantile(c.q); !near(got, c.want) {
			t.Errorf("quantile %.1f: %v, want about %v", c.q, got, c.want)
		}
	}
	// The slowest 5 % of five values is none of them: all five count.
	if got, want := m.trimmedMean(0.05), (500*time.Microsecond+5*time.Millisecond+80*time.Millisecond)/5; !near(got, want) {
		t.Errorf("mean %v, want about %v", got, want)
	}
	// Trimming 40 % leaves the three fastest.
	if got, want := m.trimmedMean(0.4), (500*time.Microsecond+5*time.Millisecond)/3; !near(got, want) {
		t.Errorf("mean of the fastest three %v, want about %v", got, want)
	}
}

// The fast binning must be the definition's, on every bin's edges and in
// between.
func TestHistBinMatchesDefinition(t *testing.T) {
	check := func(d time.Duration) {
		if got, want := histBin(d), histBinExact(d); got != want {
			t.Fatalf("histBin(%d ns) = %d, want %d", int64(d), got, want)
		}
	}
	for i := 1; i < histBins; i++ {
		for _, d := range []time.Duration{histFloor[i] - 1, histFloor[i], histFloor[i] + 1} {
			check(d)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		check(time.Duration(math.Exp(rng.Float64() * math.Log(float64(200*time.Second)))))
	}
	for _, d := range []time.Duration{math.MinInt64, -1, 0, 1, 999, 1000, 1001, 1040, 1041, math.MaxInt64} {
		check(d)
	}
}
