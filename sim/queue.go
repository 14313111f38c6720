package sim

// Event kinds, in the order they run when they fall on the same instant:
// work finishing frees capacity before new work arrives, and the periodic
// refresh and autoscaler steps see the instant's arrivals.
const (
	evBatchDone uint8 = iota
	evLoadDone
	evWorkerUp
	evWake
	evArrival
	evDeliver
	evRefresh
	evStep
	evSample
)

// event is one thing due at a virtual time. ref and gen identify what it
// is about (a replica, a worker, a request); gen guards against acting on
// something that changed since the event was scheduled.
type event struct {
	at   int64 // virtual ns
	kind uint8
	ref  int32
	gen  uint32
}

// heapEvent is an event as the heap keeps it: its kind and the order it was
// pushed in share one key (kind in the top byte), so an event is 24 bytes
// and two compare in at most two steps.
type heapEvent struct {
	at  int64
	ord uint64 // kind<<56 | push sequence
	ref int32
	gen uint32
}

func (a *heapEvent) before(b *heapEvent) bool {
	return a.at < b.at || a.at == b.at && a.ord < b.ord
}

// eventQueue is a binary min-heap of events by (time, kind, sequence),
// with no interface conversions and no allocation once grown: ties break
// by kind, then by the order events were pushed, so a run is
// deterministic.
type eventQueue struct {
	h   []heapEvent
	seq uint64
}

func (q *eventQueue) push(e event) {
	q.seq++
	q.h = append(q.h, heapEvent{at: e.at, ord: uint64(e.kind)<<56 | q.seq, ref: e.ref, gen: e.gen})
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.h[i].before(&q.h[p]) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *eventQueue) pop() (event, bool) {
	if len(q.h) == 0 {
		return event{}, false
	}
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h = q.h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.h[r].before(&q.h[l]) {
			m = r
		}
		if !q.h[m].before(&q.h[i]) {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return event{at: top.at, kind: uint8(top.ord >> 56), ref: top.ref, gen: top.gen}, true
}

func (q *eventQueue) len() int { return len(q.h) }
