package worker

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/inference"
)

// Replica states.
const (
	StateLoading  = "loading"  // reserving memory, fetching and building the session
	StateReady    = "ready"    // serving
	StateDraining = "draining" // unloading: finishes its queue, takes no new requests
)

// Request is one inference on a replica.
type Request struct {
	// Inputs holds one tensor per input of the architecture's contract,
	// in its order (names and datatypes are not read), each with its
	// whole shape — the batch dimension first, equal to Batch, when the
	// contract is batched — and its data as raw little-endian bytes in
	// the use case's raw domain (for the image zoo: FP32 pixels 0–255);
	// the worker applies the architecture's InputScale to the first
	// input. The worker reads them until Infer returns; do not modify
	// them meanwhile.
	Inputs []inference.Tensor
	// Batch is the number of samples: dimension 0 of every input of a
	// batched contract, 1 for an unbatched one.
	Batch int
	// Deadline is when the answer should be back; zero means none.
	Deadline time.Time
	// Asked is what the request asked for (its latency target, accuracy
	// floor, whether it named the variant); the replica's stats report
	// it so that the scaling controller sees every controller's traffic.
	Asked health.Asked
}

// Response is one request's share of an executed batch.
type Response struct {
	// Outputs holds every output of the contract, in its order, with
	// its name, datatype, shape (the batch dimension is the request's
	// Batch) and raw little-endian data.
	Outputs []inference.Tensor
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
	key     string // the request's non-batch input shapes; a batch shares one
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
	inlineSc scratch // for inline runs (one at a time)

	// Set once when the load completes, read-only afterwards.
	contract   catalog.Contract
	static     bool // the contract fixes every input dimension but the batch
	maxBatch   int
	fixedBatch int // > 0 when the model's batch dimension is fixed
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
	r.contract = r.arch.Contract
	r.static = r.contract.Static()
	r.maxBatch = max(r.variant.MaxBatch, 1)
	if !r.contract.Batched {
		r.maxBatch = 1
	}
	if b := r.contract.FixedBatch(); b > 0 {
		r.fixedBatch = b
		r.maxBatch = min(r.maxBatch, r.fixedBatch)
	}
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
	key, err := r.check(req)
	if err != nil {
		r.mu.Unlock()
		return Response{}, err
	}
	now := r.now()
	if err := batching.Admit(now, req.Batch, req.Deadline, r.queued, r.executing, r.bound, r.costNow()); err != nil {
		r.mu.Unlock()
		r.mon.Refused(req.Asked)
		return Response{}, err
	}
	p := &pending{ctx: ctx, req: req, key: key, arrived: now, done: make(chan result, 1)}
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
	r.mon.Admitted(depth, req.Asked)
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
	r.mon.Admitted(0, p.req.Asked)
	r.run(sess, []*pending{p}, p.req.Batch, &r.inlineSc)
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
		sc    scratch
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
		// A batch is the head of the queue and those behind it whose
		// inputs have its shape (always all of them for a static contract).
		view = view[:0]
		for _, p := range r.queue {
			if p.key != r.queue[0].key {
				break
			}
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
			if batching.Expired(now, batching.Queued{Deadline: p.req.Deadline}) {
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
			r.mon.Refused(health.Asked{})
		}
		if len(batch) > 0 {
			r.run(r.sess, batch, samples, &sc)
		}
		r.mu.Lock()
		r.executing = 0
		r.mu.Unlock()
	}
}

// scratch holds the buffers one batcher reuses from batch to batch.
type scratch struct {
	in  [][]byte
	ts  []inference.Tensor
	lat []time.Duration
}

// run executes one batch and answers its requests.
func (r *replica) run(sess *executor.Session, batch []*pending, samples int, sc *scratch) {
	exec := samples
	if r.fixedBatch > 0 {
		exec = r.fixedBatch
	}
	inputs := r.assemble(batch, exec, sc)
	start := r.now()
	outs, err := sess.Run(inputs, nil)
	end := r.now()
	compute := end.Sub(start)
	if err == nil {
		r.observe(exec, compute)
		err = r.checkOutputs(outs, exec)
	}
	if err != nil {
		err = fmt.Errorf("run batch of %d on %s: %w", samples, r.id, err)
	}
	// Record before answering, so a caller that reads the statistics after
	// its answer sees its own batch.
	sc.lat = sc.lat[:0]
	for _, p := range batch {
		sc.lat = append(sc.lat, end.Sub(p.arrived))
	}
	r.mon.Batch(samples, compute, sc.lat, err != nil)
	off := 0
	for _, p := range batch {
		n := p.req.Batch
		var res result
		if err != nil {
			res.err = err
		} else {
			res.resp = Response{
				Outputs:     r.share(outs, exec, off, n),
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
}

// assemble builds the batch's input tensors: each input of every request
// concatenated along the batch dimension (with the first input scaled by
// the architecture's preprocessing), padded with zeros up to exec samples.
// An unbatched request's tensors pass as they are, unless scaled.
func (r *replica) assemble(batch []*pending, exec int, sc *scratch) []inference.Tensor {
	n := len(r.contract.Inputs)
	for len(sc.in) < n {
		sc.in = append(sc.in, nil)
	}
	sc.ts = sc.ts[:0]
	head := batch[0].req
	for i := range n {
		t := head.Inputs[i]
		if !r.contract.Batched {
			if i == 0 && r.scale != 1 {
				sc.in[i] = grow(sc.in[i], len(t.Data))
				copyInput(sc.in[i], t.Data, r.scale)
				t.Data = sc.in[i]
			}
			sc.ts = append(sc.ts, inference.Tensor{Shape: t.Shape, Data: t.Data})
			continue
		}
		per := len(t.Data) / head.Batch
		buf := grow(sc.in[i], exec*per)
		off := 0
		for _, p := range batch {
			scale := 1.0
			if i == 0 {
				scale = r.scale
			}
			off += copyInput(buf[off:], p.req.Inputs[i].Data, scale)
		}
		clear(buf[off:]) // padding up to a fixed batch dimension
		sc.in[i] = buf
		shape := append([]int64{int64(exec)}, t.Shape[1:]...)
		sc.ts = append(sc.ts, inference.Tensor{Shape: shape, Data: buf})
	}
	return sc.ts
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// checkOutputs verifies a batched run's outputs all lead with the batch.
func (r *replica) checkOutputs(outs []inference.Tensor, exec int) error {
	if !r.contract.Batched {
		return nil
	}
	for _, o := range outs {
		if len(o.Shape) == 0 || o.Shape[0] != int64(exec) || len(o.Data)%exec != 0 {
			return fmt.Errorf("output %q %v (%d bytes) does not have batch %d", o.Name, o.Shape, len(o.Data), exec)
		}
	}
	return nil
}

// share is one request's part of the batch's outputs: n samples from
// sample off.
func (r *replica) share(outs []inference.Tensor, exec, off, n int) []inference.Tensor {
	if !r.contract.Batched {
		return outs
	}
	res := make([]inference.Tensor, len(outs))
	for j, o := range outs {
		per := len(o.Data) / exec
		shape := append([]int64{int64(n)}, o.Shape[1:]...)
		res[j] = inference.Tensor{Name: o.Name, Datatype: o.Datatype, Shape: shape,
			Data: o.Data[off*per : (off+n)*per : (off+n)*per]}
	}
	return res
}

// check verifies req against the contract and returns the key of its
// non-batch input shapes ("" for a static contract: every request batches
// with every other). Call with r.mu held.
func (r *replica) check(req Request) (string, error) {
	c := r.contract
	if len(req.Inputs) != len(c.Inputs) {
		return "", fmt.Errorf("%w: %s takes %d inputs (%s), got %d", ErrBadInput, r.variant.Name, len(c.Inputs), catalog.Names(c.Inputs), len(req.Inputs))
	}
	if !c.Batched && req.Batch != 1 {
		return "", fmt.Errorf("%w: %s has no batch dimension; a request is one sample, not %d", ErrBadInput, r.variant.Name, req.Batch)
	}
	var key []byte
	for i, t := range req.Inputs {
		spec := c.Inputs[i]
		if msg := c.CheckShape(spec, t.Shape); msg != "" {
			return "", fmt.Errorf("%w: input %d %s", ErrBadInput, i, msg)
		}
		if c.Batched && t.Shape[0] != int64(req.Batch) {
			return "", fmt.Errorf("%w: input %q has batch %d, the request %d", ErrBadInput, spec.Name, t.Shape[0], req.Batch)
		}
		if want := catalog.Elements(t.Shape) * int64(executor.ElementSize(spec.DataType)); int64(len(t.Data)) != want {
			return "", fmt.Errorf("%w: input %q of shape %v and type %s needs %d bytes, got %d", ErrBadInput, spec.Name, t.Shape, spec.DataType, want, len(t.Data))
		}
		if !r.static {
			for _, d := range c.Sample(catalog.TensorSpec{Shape: t.Shape}) {
				key = strconv.AppendInt(key, d, 10)
				key = append(key, ',')
			}
			key = append(key, ';')
		}
	}
	return string(key), nil
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
