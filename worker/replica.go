package worker

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/health"
)

// Replica states.
const (
	StateLoading  = "loading"  // reserving memory, fetching and building the session
	StateReady    = "ready"    // serving
	StateDraining = "draining" // unloading: finishes its queue, takes no new requests
)

// Request is one inference on a replica.
type Request struct {
	// Input holds Batch samples of the model's input as raw little-endian
	// bytes, in the use case's raw domain (for the image zoo: FP32 pixels
	// 0–255); the worker applies the architecture's InputScale. The worker
	// reads it until Infer returns; do not modify it meanwhile.
	Input []byte
	Batch int
	// Deadline is when the answer should be back; zero means none.
	Deadline time.Time
}

// Response is one request's share of an executed batch.
type Response struct {
	Output   []byte  // raw little-endian bytes of the output datatype
	Shape    []int64 // output shape; the batch dimension is the request's Batch
	DataType string  // Open Inference Protocol datatype of Output
	// QueueTime is admission to the start of its batch; ComputeTime is the
	// batch's ONNX Runtime run.
	QueueTime   time.Duration
	ComputeTime time.Duration
	// BatchSize is the number of samples the executed batch held.
	BatchSize int
	Replica   string
	Variant   string
}

type result struct {
	resp Response
	err  error
}

// pending is a request in a replica's queue.
type pending struct {
	ctx     context.Context
	req     Request
	arrived time.Time
	done    chan result // buffered; receives exactly once unless the caller left first
	taken   bool        // the batcher took it (guarded by replica.mu)
}

// replica is one loaded variant with its queue, batcher and monitor.
type replica struct {
	id      string
	variant catalog.Variant
	arch    catalog.Architecture
	now     func() time.Time
	mon     *health.Monitor
	wake    chan struct{} // buffered 1: "the queue changed"
	done    chan struct{} // closed once the replica is finalised
	once    sync.Once

	mu        sync.Mutex
	state     string
	started   bool // its batcher goroutine was started (guarded by Worker.mu)
	sess      *executor.Session
	loadedAt  time.Time
	loadTime  time.Duration
	queue     []*pending
	queued    int           // samples in queue
	executing int           // samples in the running batch
	inline    bool          // a request is running on its caller's goroutine (the idle fast path)
	live      bool          // the batcher goroutine is running: the worker serves
	maxDelay  time.Duration // the batcher's cap on waiting for company; set with live
	health    Health

	// runMu is held by an inline run; finalize takes it before closing the
	// session, so a session never closes under a running request.
	runMu    sync.Mutex
	inlineIn []byte // scratch for inline runs (one at a time)
	inlineLt []time.Duration

	// Set once when the load completes, read-only afterwards.
	io         executor.IO
	maxBatch   int
	fixedBatch int // > 0 when the model's batch dimension is fixed
	inBytes    int // bytes per input sample
	scale      float64
	bound      int
	cost       batching.CostModel // the profile's, scaled by slowness
	median     func(int) float64  // profiled p50 (ms) at a batch

	// slowness is how much slower than its profile the replica has run
	// lately (observed compute ÷ profiled median, smoothed over about five
	// batches; float64 bits). Admission and batching scale the profile by
	// it when above 1, so a replica on a machine busier than when it was
	// profiled refuses what it can no longer finish in time instead of
	// admitting it to miss its deadline.
	slowness atomic.Uint64
	lastRun  atomic.Int64 // unix ns of the last observed batch; 0: none
}

// setCost builds the cost model from profile p, scaled by the slowness
// (which starts at 1).
func (r *replica) setCost(p catalog.Profile) {
	r.median = p.P50At
	r.slowness.Store(math.Float64bits(1))
	base := batching.ProfileCost(p.P99At, p.ThroughputQPS, r.maxBatch)
	r.cost = batching.CostModel{Throughput: base.Throughput, Exec: func(n int) time.Duration {
		return time.Duration(float64(base.Exec(n)) * r.slowFactor())
	}}
}

// slowFactor is the factor (≥ 1) the profile's times are scaled by: the
// slowness, faded by the time since the last batch
// (health.DecayedSlowness).
func (r *replica) slowFactor() float64 {
	s := math.Float64frombits(r.slowness.Load())
	var idle time.Duration
	if last := r.lastRun.Load(); last != 0 && r.now != nil {
		idle = time.Duration(r.now().UnixNano() - last)
	}
	return health.DecayedSlowness(s, idle)
}

// observe folds one batch's compute time into the slowness
// (health.Slowness).
func (r *replica) observe(exec int, compute time.Duration) {
	if r.median == nil {
		return
	}
	old := r.slowFactor() // what time has faded counts as gone
	r.slowness.Store(math.Float64bits(health.Slowness(old, compute, r.median(exec))))
	if r.now != nil {
		r.lastRun.Store(r.now().UnixNano())
	}
}

// costNow is the cost model with the current slowness. Call with r.mu held.
func (r *replica) costNow() batching.CostModel {
	c := r.cost
	c.Throughput /= r.slowFactor()
	return c
}

// ready installs a loaded session. Call with r.mu held.
func (r *replica) ready(sess *executor.Session, queueBound int, loadTime time.Duration) {
	r.sess = sess
	r.io = sess.IO()
	r.maxBatch = max(r.variant.MaxBatch, 1)
	if b := r.io.Input.Shape[0]; b > 0 {
		r.fixedBatch = int(b)
		r.maxBatch = min(r.maxBatch, r.fixedBatch)
	}
	r.inBytes = int(r.io.Input.SampleElements()) * executor.ElementSize(r.io.Input.DataType)
	r.scale = r.arch.InputScale
	if r.scale == 0 {
		r.scale = 1
	}
	r.bound = max(queueBound, r.maxBatch)
	r.setCost(r.variant.Profile)
	r.state = StateReady
	r.loadedAt = r.now()
	r.loadTime = loadTime
}

func (r *replica) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// infer admits req to the queue and waits for its answer.
func (r *replica) infer(ctx context.Context, req Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, err
	}
	r.mu.Lock()
	switch r.state {
	case StateLoading:
		r.mu.Unlock()
		return Response{}, fmt.Errorf("%w: %s", ErrNotReady, r.id)
	case StateDraining:
		r.mu.Unlock()
		return Response{}, fmt.Errorf("%w: %s", ErrDraining, r.id)
	}
	if req.Batch < 1 || req.Batch > r.maxBatch {
		r.mu.Unlock()
		return Response{}, fmt.Errorf("%w: batch %d is outside 1–%d, the max batch of %s", ErrBadInput, req.Batch, r.maxBatch, r.variant.Name)
	}
	if want := req.Batch * r.inBytes; len(req.Input) != want {
		r.mu.Unlock()
		return Response{}, fmt.Errorf("%w: %d samples of %s %v need %d bytes, got %d",
			ErrBadInput, req.Batch, r.io.Input.DataType, r.io.Input.SampleShape(), want, len(req.Input))
	}
	now := r.now()
	if err := batching.Admit(now, req.Batch, req.Deadline, r.queued, r.executing, r.bound, r.costNow()); err != nil {
		r.mu.Unlock()
		r.mon.Refused()
		return Response{}, err
	}
	p := &pending{ctx: ctx, req: req, arrived: now, done: make(chan result, 1)}
	// Fast path: on an idle replica, a request the batcher would run at
	// once — no deadline, a full batch, or a deadline too close to wait
	// for company — runs on the caller's goroutine. Going through the
	// batcher would add two goroutine hand-offs, each a thread wake-up
	// when the process was idle: tens of microseconds on an idle machine,
	// milliseconds on a busy one, and the tightest targets can least
	// afford them.
	if r.live && len(r.queue) == 0 && r.executing == 0 && !r.inline && r.sess != nil && r.runsAlone(now, req) {
		return r.runInline(p)
	}
	r.queue = append(r.queue, p)
	r.queued += req.Batch
	depth := r.queued
	r.mu.Unlock()
	r.mon.Admitted(depth)
	r.signal()

	select {
	case res := <-p.done:
		return res.resp, res.err
	case <-ctx.Done():
	}
	r.mu.Lock()
	dropped := !p.taken
	if dropped {
		r.remove(p)
	}
	r.mu.Unlock()
	if dropped {
		r.mon.Dropped()
		return Response{}, fmt.Errorf("request left the queue of %s: %w", r.id, ctx.Err())
	}
	select { // its batch finished as the caller gave up: answer anyway
	case res := <-p.done:
		return res.resp, res.err
	default:
		return Response{}, fmt.Errorf("request to %s abandoned while running: %w", r.id, ctx.Err())
	}
}

// runsAlone says whether the batcher would run req at once were it alone
// in the queue: it is a full batch, has no deadline, waiting is disabled,
// or its slack leaves no time to wait for company. Call with r.mu held.
func (r *replica) runsAlone(now time.Time, req Request) bool {
	if req.Deadline.IsZero() || req.Batch >= r.maxBatch || r.maxDelay <= 0 {
		return true
	}
	lone := [1]batching.Queued{{Arrived: now, Deadline: req.Deadline, Samples: req.Batch}}
	return batching.PlanBatch(now, lone[:], r.maxBatch, r.maxDelay, r.costNow(), false).N > 0
}

// runInline runs p alone on the caller's goroutine. Call with r.mu held;
// it returns with r.mu released.
func (r *replica) runInline(p *pending) (Response, error) {
	p.taken = true
	r.inline = true
	r.executing = p.req.Batch
	sess := r.sess
	r.runMu.Lock()
	r.mu.Unlock()
	r.mon.Admitted(0)
	r.inlineIn, r.inlineLt = r.run(sess, []*pending{p}, p.req.Batch, r.inlineIn, r.inlineLt)
	r.runMu.Unlock()
	r.mu.Lock()
	r.inline = false
	r.executing = 0
	waiting := len(r.queue) > 0 || r.state == StateDraining
	r.mu.Unlock()
	if waiting { // requests queued meanwhile, or the batcher waits to finish draining
		r.signal()
	}
	res := <-p.done
	return res.resp, res.err
}

// remove takes p out of the queue. Call with r.mu held.
func (r *replica) remove(p *pending) {
	for i, q := range r.queue {
		if q == p {
			r.queue = append(r.queue[:i], r.queue[i+1:]...)
			r.queued -= p.req.Batch
			return
		}
	}
}

// loop is the replica's batcher. It returns true when the replica drained
// (draining and nothing left) and false when stop closed.
func (r *replica) loop(stop <-chan struct{}, maxDelay time.Duration) bool {
	r.mu.Lock()
	r.live = true
	r.maxDelay = maxDelay
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.live = false
		r.mu.Unlock()
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		view  []batching.Queued
		batch []*pending
		in    []byte
		lat   []time.Duration
	)
	for {
		select {
		case <-stop:
			return false
		default:
		}
		r.mu.Lock()
		if len(r.queue) == 0 {
			draining := r.state == StateDraining && !r.inline
			r.mu.Unlock()
			if draining {
				return true
			}
			select {
			case <-r.wake:
				continue
			case <-stop:
				return false
			}
		}
		if r.inline { // the inline run signals when it is done
			r.mu.Unlock()
			select {
			case <-r.wake:
				continue
			case <-stop:
				return false
			}
		}
		view = view[:0]
		for _, p := range r.queue {
			view = append(view, batching.Queued{Arrived: p.arrived, Deadline: p.req.Deadline, Samples: p.req.Batch})
		}
		pl := batching.PlanBatch(r.now(), view, r.maxBatch, maxDelay, r.costNow(), r.state == StateDraining)
		if pl.N == 0 {
			r.mu.Unlock()
			timer.Reset(pl.Wait)
			select {
			case <-r.wake:
			case <-timer.C:
			case <-stop:
				return false
			}
			timer.Stop()
			continue
		}
		batch = batch[:0]
		dropped, shed, samples := 0, 0, 0
		now := r.now()
		for _, p := range r.queue[:pl.N] {
			p.taken = true
			if p.ctx.Err() != nil { // cancelled while queued: drop without running
				dropped++
				continue
			}
			// Shed a request that can no longer make its deadline (the
			// replica ran slower than its profile): answering it late
			// helps nobody, refusing it lets the client retry elsewhere.
			if !p.req.Deadline.IsZero() && now.After(p.req.Deadline) {
				shed++
				p.done <- result{err: fmt.Errorf("%w: its deadline passed %s ago while it was queued",
					ErrOverloaded, ms(now.Sub(p.req.Deadline)))}
				continue
			}
			batch = append(batch, p)
			samples += p.req.Batch
		}
		r.queue = append(r.queue[:0], r.queue[pl.N:]...)
		r.queued -= pl.Samples
		r.executing = samples
		r.mu.Unlock()
		for range dropped {
			r.mon.Dropped()
		}
		for range shed {
			r.mon.Refused()
		}
		if len(batch) > 0 {
			in, lat = r.run(r.sess, batch, samples, in, lat)
		}
		r.mu.Lock()
		r.executing = 0
		r.mu.Unlock()
	}
}

// run executes one batch and answers its requests. in and lat are scratch
// buffers the batcher reuses.
func (r *replica) run(sess *executor.Session, batch []*pending, samples int, in []byte, lat []time.Duration) ([]byte, []time.Duration) {
	exec := samples
	if r.fixedBatch > 0 {
		exec = r.fixedBatch
	}
	need := exec * r.inBytes
	if cap(in) < need {
		in = make([]byte, need)
	}
	in = in[:need]
	off := 0
	for _, p := range batch {
		off += copyInput(in[off:], p.req.Input, r.scale)
	}
	clear(in[off:]) // padding up to a fixed batch dimension

	start := r.now()
	out, shape, err := sess.Run(in, exec, nil)
	end := r.now()
	compute := end.Sub(start)
	if err == nil {
		r.observe(exec, compute)
	}
	per := 0
	if err == nil {
		if len(shape) == 0 || shape[0] != int64(exec) || len(out)%exec != 0 {
			err = fmt.Errorf("output %v (%d bytes) does not have batch %d", shape, len(out), exec)
		} else {
			per = len(out) / exec
		}
	}
	if err != nil {
		err = fmt.Errorf("run batch of %d on %s: %w", samples, r.id, err)
	}
	// Record before answering, so a caller that reads the statistics after
	// its answer sees its own batch.
	lat = lat[:0]
	for _, p := range batch {
		lat = append(lat, end.Sub(p.arrived))
	}
	r.mon.Batch(samples, compute, lat, err != nil)
	off = 0
	for _, p := range batch {
		n := p.req.Batch
		var res result
		if err != nil {
			res.err = err
		} else {
			oshape := append([]int64(nil), shape...)
			oshape[0] = int64(n)
			res.resp = Response{
				Output:      out[off*per : (off+n)*per : (off+n)*per],
				Shape:       oshape,
				DataType:    r.io.Output.DataType,
				QueueTime:   start.Sub(p.arrived),
				ComputeTime: compute,
				BatchSize:   samples,
				Replica:     r.id,
				Variant:     r.variant.Name,
			}
		}
		off += n
		p.done <- res
	}
	return in, lat
}

// copyInput copies one request's samples into the batch buffer, applying
// the architecture's preprocessing (×scale on FP32 values) on the way.
// The multiplication is done in float64 and rounded once, exactly as
// validation.Set.FP32 prepares inputs for the profiler.
func copyInput(dst, src []byte, scale float64) int {
	if scale == 1 {
		return copy(dst, src)
	}
	for i := 0; i+4 <= len(src); i += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(src[i:]))
		binary.LittleEndian.PutUint32(dst[i:], math.Float32bits(float32(float64(v)*scale)))
	}
	return len(src)
}

// fail answers every queued request with err and empties the queue.
// Call with r.mu held.
func (r *replica) fail(err error) {
	for _, p := range r.queue {
		p.taken = true
		p.done <- result{err: err}
	}
	r.queue = nil
	r.queued = 0
}
