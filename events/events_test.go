package events

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seqs lists the events' Seq numbers.
func seqs(es []Event) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fill returns a log of capacity c with n events appended.
func fill(c, n int) *Log {
	l := NewLog(c, nil)
	for range n {
		l.Append(Event{Source: "test", Action: "replicate"})
	}
	return l
}

func TestAppendAssignsSeqAndTime(t *testing.T) {
	var seen []Event
	l := NewLog(4, func(e Event) { seen = append(seen, e) })
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	nums := map[string]float64{"demand_qps": 120}
	a := l.Append(Event{Source: "monitor", Action: "interfered"})
	b := l.Append(Event{Source: "monitor", Action: "cleared", Time: at, Numbers: nums})
	nums["demand_qps"] = 1 // the caller's map is not the log's
	if a.Seq != 1 || b.Seq != 2 {
		t.Fatalf("seqs %d %d, want 1 2", a.Seq, b.Seq)
	}
	if a.Time.IsZero() || !b.Time.Equal(at) {
		t.Fatalf("times %v %v: want now and the time given", a.Time, b.Time)
	}
	if got := l.Last(1)[0].Numbers["demand_qps"]; got != 120 {
		t.Fatalf("kept numbers changed with the caller's map: %v", got)
	}
	if len(seen) != 2 || seen[1].Seq != 2 {
		t.Fatalf("onAppend saw %v", seqs(seen))
	}
	if l.LastSeq() != 2 {
		t.Fatalf("LastSeq %d", l.LastSeq())
	}
}

func TestReads(t *testing.T) {
	tests := []struct {
		name   string
		cap, n int
		read   func(*Log) []Event
		want   []uint64
	}{
		{"empty since", 3, 0, func(l *Log) []Event { return l.Since(0, 0) }, nil},
		{"empty last", 3, 0, func(l *Log) []Event { return l.Last(5) }, nil},
		{"since 0 all", 5, 3, func(l *Log) []Event { return l.Since(0, 0) }, []uint64{1, 2, 3}},
		{"since middle", 5, 3, func(l *Log) []Event { return l.Since(1, 0) }, []uint64{2, 3}},
		{"since newest", 5, 3, func(l *Log) []Event { return l.Since(3, 0) }, nil},
		{"since beyond", 5, 3, func(l *Log) []Event { return l.Since(9, 0) }, nil},
		{"since limit takes the oldest", 5, 4, func(l *Log) []Event { return l.Since(0, 2) }, []uint64{1, 2}},
		{"since limit above count", 5, 2, func(l *Log) []Event { return l.Since(0, 9) }, []uint64{1, 2}},
		{"bounded keeps the newest", 3, 7, func(l *Log) []Event { return l.Since(0, 0) }, []uint64{5, 6, 7}},
		{"bounded since a dropped seq", 3, 7, func(l *Log) []Event { return l.Since(2, 0) }, []uint64{5, 6, 7}},
		{"bounded since a kept seq", 3, 7, func(l *Log) []Event { return l.Since(5, 0) }, []uint64{6, 7}},
		{"bounded since with limit", 3, 7, func(l *Log) []Event { return l.Since(5, 1) }, []uint64{6}},
		{"last fewer", 3, 7, func(l *Log) []Event { return l.Last(2) }, []uint64{6, 7}},
		{"last more than kept", 3, 7, func(l *Log) []Event { return l.Last(10) }, []uint64{5, 6, 7}},
		{"last zero", 3, 7, func(l *Log) []Event { return l.Last(0) }, nil},
		{"capacity one", 1, 4, func(l *Log) []Event { return l.Since(0, 0) }, []uint64{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqs(tt.read(fill(tt.cap, tt.n))); !equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDefaultCapacity(t *testing.T) {
	if c := NewLog(0, nil).Cap(); c != DefaultCapacity {
		t.Fatalf("cap %d", c)
	}
}

func TestReadersGetCopies(t *testing.T) {
	l := fill(3, 2)
	es := l.Since(0, 0)
	es[0].Action = "changed"
	if l.Since(0, 0)[0].Action != "replicate" {
		t.Fatal("a reader's slice aliases the log")
	}
}

func TestWaitReturnsAtOnceWhenNewer(t *testing.T) {
	l := fill(3, 2)
	es, err := l.Wait(context.Background(), 1)
	if err != nil || !equal(seqs(es), []uint64{2}) {
		t.Fatalf("got %v, %v", seqs(es), err)
	}
}

func TestWaitWakesOnAppend(t *testing.T) {
	l := fill(8, 2)
	type result struct {
		es  []Event
		err error
	}
	done := make(chan result)
	go func() {
		es, err := l.Wait(context.Background(), 2)
		done <- result{es, err}
	}()
	// Whether the append lands before or after Wait starts, Wait must
	// return it.
	l.Append(Event{Source: "controller", Action: "failed"})
	r := <-done
	if r.err != nil || len(r.es) != 1 || r.es[0].Seq != 3 || r.es[0].Action != "failed" {
		t.Fatalf("got %v, %v", seqs(r.es), r.err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	l := fill(8, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := l.Wait(ctx, 2)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestCloseEndsWaits(t *testing.T) {
	l := fill(8, 2)
	done := make(chan error)
	go func() {
		_, err := l.Wait(context.Background(), 2)
		done <- err
	}()
	l.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
	l.Close() // twice is fine
	l.Append(Event{Action: "after"})
	if es, err := l.Wait(context.Background(), 2); err != nil || len(es) != 1 {
		t.Fatalf("a closed log still returns what is newer: %v, %v", seqs(es), err)
	}
	if _, err := l.Wait(context.Background(), 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
}

func TestConcurrentAppendsAndReads(t *testing.T) {
	const writers, each = 8, 200
	var counted sync.Map
	l := NewLog(64, func(e Event) { counted.Store(e.Seq, true) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A follower reads every event in order while writers append; it may
	// miss events the ring drops, but never sees one twice or out of order.
	followed := make(chan error)
	go func() {
		var last uint64
		for last < writers*each {
			es, err := l.Wait(ctx, last)
			if err != nil {
				followed <- err
				return
			}
			for _, e := range es {
				if e.Seq <= last {
					t.Errorf("seq %d after %d", e.Seq, last)
				}
				last = e.Seq
			}
		}
		followed <- nil
	}()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				l.Append(Event{Source: "model-autoscaler", Action: "replicate"})
				_ = l.Last(3)
			}
		})
	}
	wg.Wait()
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if l.LastSeq() != writers*each {
		t.Fatalf("LastSeq %d, want %d", l.LastSeq(), writers*each)
	}
	n := 0
	counted.Range(func(_, _ any) bool { n++; return true })
	if n != writers*each {
		t.Fatalf("onAppend saw %d distinct events, want %d", n, writers*each)
	}
	if got := seqs(l.Since(0, 0)); len(got) != 64 || got[0] != writers*each-63 || got[63] != writers*each {
		t.Fatalf("kept %d events from %v", len(got), got[:1])
	}
}

func TestString(t *testing.T) {
	at := time.Date(2025, 1, 2, 15, 4, 5, 123e6, time.UTC)
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{"variant on worker", Event{Time: at, Source: "model-autoscaler", Action: "replicate", Variant: "resnet18-fp32-b8", Worker: "w2",
			Message: "demand 120 qps near capacity 95 qps"},
			"15:04:05.123 model-autoscaler replicate resnet18-fp32-b8 on w2: demand 120 qps near capacity 95 qps"},
		{"switch", Event{Time: at, Source: "model-autoscaler", Action: "switch", From: "r-b1", Variant: "r-b8", Worker: "w1", Message: "cheaper"},
			"15:04:05.123 model-autoscaler switch r-b1 -> r-b8 on w1: cheaper"},
		{"worker alone with class", Event{Time: at, Source: "cluster-autoscaler", Action: "add-worker", Worker: "w3", Class: "c5", Message: "all busy"},
			"15:04:05.123 cluster-autoscaler add-worker w3 (c5): all busy"},
		{"architecture, reason when no message", Event{Time: at, Source: "controller", Action: "failed", Architecture: "resnet18", Reason: "placement-failed"},
			"15:04:05.123 controller failed resnet18: placement-failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.String(); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	es := []Event{
		{Seq: 1, Source: "monitor", Action: "interfered", Variant: "a"},
		{Seq: 2, Source: "model-autoscaler", Action: "replicate", Variant: "a"},
		{Seq: 3, Source: "model-autoscaler", Action: "replicate", Variant: "b"},
	}
	tests := []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"none", Filter{}, []uint64{1, 2, 3}},
		{"source", Filter{Source: "model-autoscaler"}, []uint64{2, 3}},
		{"action and variant", Filter{Action: "replicate", Variant: "a"}, []uint64{2}},
		{"no match", Filter{Source: "cluster-autoscaler"}, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqs(tt.f.Apply(es)); !equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
