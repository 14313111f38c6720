package health

import (
	"math"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestMonitorWindow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	m := NewMonitor(clk.now, 10*time.Second, time.Second)

	// 10 s of steady load: 100 requests a second in batches of 4.
	for range 10 {
		for range 25 {
			for range 4 {
				m.Admitted(3)
			}
			m.Batch(4, 2*time.Millisecond, []time.Duration{3 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond, 9 * time.Millisecond}, false)
		}
		m.Refused()
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
			m.Admitted(0)
		}
		clk.advance(time.Second)
	}
	for range 150 { // then 200/s: 150 admitted, 50 refused in half a second
		m.Admitted(0)
	}
	for range 50 {
		m.Refused()
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
}
