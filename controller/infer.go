package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/batching"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/selection"
	"github.com/infaas/infaas/worker"
)

// resolve turns a protocol model name into what it names. A use case may
// be written "task/dataset" or, where a path cannot hold a slash,
// "task.dataset".
func (v *view) resolve(name string) (string, selection.Kind, error) {
	if k, ok := v.snap.Resolve(selection.KindAuto, name); ok {
		return name, k, nil
	}
	if t, d, ok := strings.Cut(name, "."); ok && !strings.Contains(d, ".") {
		uc := catalog.UseCaseID(t, d)
		if k, ok := v.snap.Resolve(selection.KindUseCase, uc); ok {
			return uc, k, nil
		}
	}
	return "", 0, fmt.Errorf("%w: %q is no variant, architecture or use case (list them with `infaas models`; a use case is written task/dataset or task.dataset)",
		ErrUnknownModel, name)
}

// contractOf is the tensor contract a request for name must meet: the
// use case's (its tensor names) for a use case, the architecture's for
// an architecture or a variant.
func (v *view) contractOf(name string, kind selection.Kind) (catalog.Contract, bool) {
	switch kind {
	case selection.KindUseCase:
		u, ok := v.useCases[name]
		return u.Contract, ok
	case selection.KindVariant:
		x, ok := v.variants[name]
		if !ok {
			return catalog.Contract{}, false
		}
		name = x.Architecture
	}
	a, ok := v.archs[name]
	return a.Contract, ok
}

// bindInputs checks the request's tensors against the contract as Triton
// does — every input named once, none unknown or missing, datatypes and
// shapes as the contract says, dimensions that share a symbol equal — and
// returns them in the contract's order with the batch size (1 for an
// unbatched contract). A batched contract also takes one sample without
// its batch dimension.
func bindInputs(req *inference.InferRequest, c catalog.Contract) ([]inference.Tensor, int, error) {
	model := req.Model
	ordered := make([]inference.Tensor, len(c.Inputs))
	seen := make([]bool, len(c.Inputs))
	batch := 0
	var symbols map[string]int64 // made when a dynamic dimension has a symbol
	for _, in := range req.Inputs {
		i := c.InputIndex(in.Name)
		switch {
		case i < 0:
			return nil, 0, fmt.Errorf("%w: %q has no input %q; its inputs are %s", ErrBadInput, model, in.Name, catalog.Names(c.Inputs))
		case seen[i]:
			return nil, 0, fmt.Errorf("%w: input %q is given twice", ErrBadInput, in.Name)
		}
		seen[i] = true
		spec := c.Inputs[i]
		if in.Datatype != spec.DataType {
			return nil, 0, fmt.Errorf("%w: input %q is %s; %q takes %s", ErrBadInput, in.Name, in.Datatype, model, c.Describe(spec))
		}
		shape := in.Shape
		if c.Batched && len(shape) == len(spec.Shape)-1 {
			shape = append([]int64{1}, shape...) // one sample
		}
		if msg := c.CheckShape(spec, shape); msg != "" {
			return nil, 0, fmt.Errorf("%w: input %q %s", ErrBadInput, in.Name, msg)
		}
		if c.Batched {
			switch {
			case shape[0] < 1:
				return nil, 0, fmt.Errorf("%w: input %q has an empty batch (shape %v); send at least one sample", ErrBadInput, in.Name, in.Shape)
			case batch != 0 && int(shape[0]) != batch:
				return nil, 0, fmt.Errorf("%w: input %q has batch %d but another input has %d; every input carries the same samples", ErrBadInput, in.Name, shape[0], batch)
			}
			batch = int(shape[0])
		}
		for k, d := range shape {
			if k >= len(spec.DimNames) || spec.DimNames[k] == "" || spec.Shape[k] >= 0 || (k == 0 && c.Batched) {
				continue
			}
			sym := spec.DimNames[k]
			if symbols == nil {
				symbols = map[string]int64{}
			}
			if prev, ok := symbols[sym]; ok && prev != d {
				return nil, 0, fmt.Errorf("%w: input %q has %s = %d but another input has %s = %d; inputs that share a dimension must agree", ErrBadInput, in.Name, sym, d, sym, prev)
			}
			symbols[sym] = d
		}
		want := catalog.Elements(shape) * int64(executor.ElementSize(spec.DataType))
		if int64(len(in.Data)) != want {
			return nil, 0, fmt.Errorf("%w: input %q holds %d bytes but shape %v of %s needs %d", ErrBadInput, in.Name, len(in.Data), in.Shape, in.Datatype, want)
		}
		ordered[i] = inference.Tensor{Name: spec.Name, Datatype: spec.DataType, Shape: shape, Data: in.Data}
	}
	var missing []catalog.TensorSpec
	for i, ok := range seen {
		if !ok {
			missing = append(missing, c.Inputs[i])
		}
	}
	if len(missing) > 0 {
		return nil, 0, fmt.Errorf("%w: %q needs input %s as well (it takes %s)", ErrBadInput, model, catalog.Names(missing), catalog.Names(c.Inputs))
	}
	if !c.Batched {
		batch = 1
	}
	return ordered, batch, nil
}

// bindOutputs resolves the requested output names to positions of the
// contract; none requested means all, in the contract's order.
func bindOutputs(req *inference.InferRequest, c catalog.Contract) ([]int, error) {
	for name := range req.Classification {
		if !slices.Contains(req.Outputs, name) {
			return nil, fmt.Errorf("%w: classification is asked for output %q, which the request does not name", ErrBadInput, name)
		}
	}
	if len(req.Outputs) == 0 {
		all := make([]int, len(c.Outputs))
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	out := make([]int, 0, len(req.Outputs))
	for _, name := range req.Outputs {
		i := c.OutputIndex(name)
		if i < 0 {
			return nil, fmt.Errorf("%w: %q has no output %q; its outputs are %s", ErrBadInput, req.Model, name, catalog.Names(c.Outputs))
		}
		if slices.Contains(out, i) {
			return nil, fmt.Errorf("%w: output %q is requested twice", ErrBadInput, name)
		}
		out = append(out, i)
	}
	return out, nil
}

func checkRequirements(r inference.Requirements) error {
	switch {
	case r.LatencyMs < 0 || math.IsNaN(r.LatencyMs) || r.LatencyMs > 3_600_000:
		return fmt.Errorf("%w: latency_ms must be between 0 and 3600000 milliseconds, got %v", ErrBadRequirements, r.LatencyMs)
	case r.MinAccuracy < 0 || r.MinAccuracy > 100 || math.IsNaN(r.MinAccuracy):
		return fmt.Errorf("%w: min_accuracy is a percentage between 0 and 100, got %v", ErrBadRequirements, r.MinAccuracy)
	case r.MaxCost < 0 || math.IsNaN(r.MaxCost):
		return fmt.Errorf("%w: max_cost (USD per 1,000 queries) must not be negative, got %v", ErrBadRequirements, r.MaxCost)
	}
	return nil
}

// Infer answers one query: select, (load,) forward, report.
func (c *Controller) Infer(ctx context.Context, req *inference.InferRequest) (*inference.InferResponse, error) {
	resp, err := c.infer(ctx, req)
	if err != nil {
		c.cfg.Metrics.Failed(failureReason(err))
	}
	return resp, err
}

// errStrictLate marks a strict request whose answer came after its
// target and was withheld (counted as "strict_late").
var errStrictLate = errors.New("withheld")

// failureReason is a short label for an error, for metrics.
func failureReason(err error) string {
	switch {
	case errors.Is(err, errStrictLate):
		return "strict_late"
	case errors.Is(err, ErrUnknownModel):
		return "unknown_model"
	case errors.Is(err, ErrBadInput), errors.Is(err, ErrBadRequirements):
		return "bad_request"
	case errors.Is(err, ErrUnsatisfiable):
		return "unsatisfiable"
	case errors.Is(err, ErrOverloaded):
		return "overloaded"
	case errors.Is(err, ErrNotReady):
		return "not_ready"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "internal"
}

// ModelVersion is the one version every model, architecture and variant
// has: infaas versions a model by registering it under another name.
const ModelVersion = "1"

func (c *Controller) infer(ctx context.Context, req *inference.InferRequest) (*inference.InferResponse, error) {
	if req.Version != "" && req.Version != ModelVersion {
		return nil, fmt.Errorf("%w: model %q has no version %q (it has [%s]); leave the version out or ask for %s",
			ErrUnknownModel, req.Model, req.Version, ModelVersion, ModelVersion)
	}
	arrival := c.now()
	resp, err := c.attempt(ctx, req, arrival)
	var gone *workerGoneError
	if !errors.As(err, &gone) {
		return resp, err
	}
	// The worker failed under the request (killed, restarted, cut off),
	// or its replica was draining or gone. Inference is idempotent: try
	// once more elsewhere if the budget allows; the worker (or just the
	// replica) is out of routing until the worker reports again.
	c.cfg.Metrics.Failover(gone.worker)
	// Retry on a snapshot that no longer routes there.
	c.refreshState()
	r := *req
	if lat := req.Requirements.LatencyMs; lat > 0 {
		left := lat - ms(c.now().Sub(arrival))
		if left <= 0 {
			return nil, fmt.Errorf("%w: worker %s failed during the request and its %v ms budget is spent; try again (%v)",
				ErrNotReady, gone.worker, lat, gone.err)
		}
		r.Requirements.LatencyMs = left
	}
	first := gone.worker
	resp, err = c.attempt(ctx, &r, c.now())
	if errors.As(err, &gone) {
		where := fmt.Sprintf("on worker %s and then on %s", first, gone.worker)
		if gone.worker == first {
			where = "twice on worker " + first
		}
		return nil, fmt.Errorf("%w: the request failed %s; try again (%v)", ErrNotReady, where, gone.err)
	}
	if err == nil {
		resp.Model = req.Model
		resp.Parameters["retried_after"] = gone.worker
	}
	return resp, err
}

// workerGoneError is a call that failed because its worker went away;
// infer retries it once on another replica.
type workerGoneError struct {
	worker string
	err    error
}

func (e *workerGoneError) Error() string {
	return fmt.Sprintf("worker %s failed during the request: %v", e.worker, e.err)
}

// loadFailed is the error of a request whose load failed: a retry
// elsewhere when the worker failed under the load, else not ready.
func (c *Controller) loadFailed(ctx context.Context, workerID string, err error) error {
	if retry, suspect := failedUnder(ctx, err); retry {
		if w := c.worker(workerID); w != nil && suspect {
			c.suspectWorker(w, err)
		}
		return &workerGoneError{worker: workerID, err: err}
	}
	return fmt.Errorf("%w: %v", ErrNotReady, err)
}

// failedUnder reports whether err, from a call to a worker under ctx,
// means the request should be tried once more elsewhere (retry), and
// whether the worker itself looks gone (suspect): the transport broke or
// the worker is stopping. A replica that is being unloaded or vanished
// (unloaded, or the worker restarted) is retried without suspecting the
// worker: inference is idempotent, and a scale-in is not the client's
// problem.
func failedUnder(ctx context.Context, err error) (retry, suspect bool) {
	if err == nil || ctx.Err() != nil {
		return false, false
	}
	switch {
	case errors.Is(err, worker.ErrStopped):
		return true, true
	case errors.Is(err, worker.ErrUnknownReplica), errors.Is(err, worker.ErrDraining):
		return true, false
	case errors.Is(err, worker.ErrNotReady), errors.Is(err, worker.ErrOverloaded),
		errors.Is(err, worker.ErrNoMemory), errors.Is(err, worker.ErrBadInput), errors.Is(err, worker.ErrIncompatible):
		return false, false
	}
	// No worker sentinel: a transport failure (Unavailable), or the
	// connection closed under the call because the worker left (Canceled
	// while the caller's context is live).
	code := status.Code(err)
	gone := code == codes.Unavailable || code == codes.Canceled
	return gone, gone
}

// attempt answers a query once.
func (c *Controller) attempt(ctx context.Context, req *inference.InferRequest, arrival time.Time) (*inference.InferResponse, error) {
	v := c.view.Load()
	if v == nil {
		return nil, fmt.Errorf("%w: the controller is starting", ErrNotReady)
	}
	if err := checkRequirements(req.Requirements); err != nil {
		return nil, err
	}
	name, kind, err := v.resolve(req.Model)
	if err != nil {
		return nil, err
	}
	contract, ok := v.contractOf(name, kind)
	if !ok {
		return nil, fmt.Errorf("%w: %q has no tensor contract", ErrUnknownModel, req.Model)
	}
	inputs, batch, err := bindInputs(req, contract)
	if err != nil {
		return nil, err
	}
	outputs, err := bindOutputs(req, contract)
	if err != nil {
		return nil, err
	}

	r := req.Requirements
	sr := selection.Request{Kind: kind, Name: name, Batch: batch, LatencyMs: r.LatencyMs, MinAccuracy: r.MinAccuracy,
		MaxCostPer1k: r.MaxCost, Strict: r.Strict}
	var d selection.Decision
	t0 := time.Now()
	c.policy.Select(v.snap, &sr, arrival, &d)
	decisionNs := time.Since(t0).Nanoseconds()
	asked := sr.Asked()
	noteTraffic(c.traffic, arrival, v.snap, asked, &d)

	rec := DecisionRecord{At: arrival, Model: req.Model, Batch: batch, LatencyMs: r.LatencyMs, MinAccuracy: r.MinAccuracy,
		MaxCost: r.MaxCost, Strict: r.Strict, Action: d.Action.String(), Reason: d.Reason.String(),
		Message: d.Message(v.snap), EstimateMs: d.EstimateMs, Met: d.Met, DecisionNs: decisionNs}
	var explanation string
	if r.Explain {
		explanation = c.policy.Explain(v.snap, &sr, arrival).String()
	}
	c.cfg.Metrics.Decision(rec.Action, rec.Reason)
	resp, err := c.act(ctx, v, &d, req, served{inputs: inputs, batch: batch, outputs: outputs, contract: contract, asked: asked}, arrival, &rec)
	if err != nil {
		rec.Error = err.Error()
		c.decisions.add(rec)
		if explanation != "" {
			err = fmt.Errorf("%w\n%s", err, explanation)
		}
		return nil, err
	}
	c.decisions.add(rec)
	if explanation != "" {
		resp.Parameters["explanation"] = explanation
	}
	return resp, nil
}

// served is a checked request: its inputs in the contract's order, its
// batch size, the positions of the outputs to return and the contract
// whose names the answer uses.
type served struct {
	inputs   []inference.Tensor
	batch    int
	outputs  []int
	contract catalog.Contract
	asked    health.Asked
}

// act carries out a decision.
func (c *Controller) act(ctx context.Context, v *view, d *selection.Decision, req *inference.InferRequest, q served, arrival time.Time, rec *DecisionRecord) (*inference.InferResponse, error) {
	s := v.snap
	batch := q.batch
	var load *loadOp
	if d.Load >= 0 {
		lv := *s.Variant(d.Load)
		rec.Load = lv.Name
		if d.LoadWorker >= 0 {
			if w := c.worker(s.Worker(d.LoadWorker).ID); w != nil {
				load = c.startLoad(lv, v.archs[lv.Architecture], w, rec.Message)
			}
		}
	}
	if d.Action == selection.Refuse {
		return nil, refusal(d, rec.Message)
	}

	var replica string
	var w Worker
	var vname string
	switch d.Action {
	case selection.LoadAndServe:
		if load == nil {
			if d.Load < 0 || d.LoadWorker < 0 {
				return nil, fmt.Errorf("%w: no load to wait for (decision %s)", ErrNotReady, d.Reason)
			}
			// The worker chosen for the load left since the snapshot.
			return nil, &workerGoneError{worker: s.Worker(d.LoadWorker).ID,
				err: fmt.Errorf("no worker to load %s on", s.Variant(d.Load).Name)}
		}
		id, err := load.wait(ctx)
		if err != nil {
			return nil, c.loadFailed(ctx, load.worker, err)
		}
		replica, w, vname = id, c.worker(load.worker), load.variant.Name
	default:
		rp := s.Replica(d.Replica)
		replica, w, vname = strings.TrimPrefix(rp.ID, rp.Worker+"/"), c.worker(rp.Worker), rp.Variant
		if strings.HasPrefix(replica, "loading:") {
			// A load the controller started and the worker does not show yet.
			key := strings.TrimPrefix(replica, "loading:")
			c.mu.Lock()
			l := c.loads[key]
			if l == nil {
				// It finished between the snapshot and now.
				l = c.finished[key]
			}
			c.mu.Unlock()
			if l == nil {
				return nil, fmt.Errorf("%w: the load of %s the snapshot showed is gone; try again", ErrNotReady, vname)
			}
			id, err := l.wait(ctx)
			if err != nil {
				return nil, c.loadFailed(ctx, l.worker, err)
			}
			replica = id
		}
	}
	if w == nil {
		// The worker left between the snapshot and now: try elsewhere.
		wid := ""
		if d.Replica >= 0 {
			wid = s.Replica(d.Replica).Worker
		}
		return nil, &workerGoneError{worker: wid, err: fmt.Errorf("worker of replica %s left routing", replica)}
	}
	rec.Variant, rec.Worker, rec.Replica = vname, w.ID(), replica

	wreq := worker.Request{Inputs: q.inputs, Batch: batch, Asked: q.asked}
	// The worker enforces the deadline (admission control, batching slack,
	// shedding) whenever the variant itself can meet it: a replica that is
	// merely too busy then refuses the excess with "try later" instead of
	// queueing it. A cold start, or a best-effort pick that is too slow even
	// when idle, is served as well as it can be and reported as not met.
	// The serving instance: the variant as it runs on this worker's class.
	x := v.variants[vname]
	if d.Variant >= 0 && s.Variant(d.Variant).Name == vname {
		x = *s.Variant(d.Variant)
	}
	if req.Requirements.LatencyMs > 0 && d.Action != selection.LoadAndServe && x.Profile.P99At(batch) <= req.Requirements.LatencyMs {
		wreq.Deadline = arrival.Add(time.Duration(req.Requirements.LatencyMs * float64(time.Millisecond)))
	}
	n := c.counter(w.ID(), replica)
	n.Add(int64(batch))
	out, err := w.Infer(ctx, replica, wreq)
	if errors.Is(err, worker.ErrNotReady) {
		// Selection may pick a replica still loading (its estimate counts
		// the load time left): wait for the load, then send.
		out, err = c.retryWhileLoading(ctx, w, replica, vname, wreq)
	}
	n.Add(-int64(batch))
	if retry, suspect := failedUnder(ctx, err); retry {
		if suspect {
			c.suspectWorker(w, err)
		} else {
			c.leave(w.ID(), replica) // draining or gone: the retry goes elsewhere
		}
		return nil, &workerGoneError{worker: w.ID(), err: err}
	}
	if err != nil {
		c.stats.failed(vname, c.now().Sub(arrival))
		return nil, workerError(err, vname)
	}
	elapsed := c.now().Sub(arrival)
	rec.ObservedMs = ms(elapsed)
	met := d.Met && (req.Requirements.LatencyMs == 0 || rec.ObservedMs <= req.Requirements.LatencyMs)
	rec.Met = met
	if req.Requirements.Strict && !met {
		c.stats.failed(vname, elapsed)
		// Strict means strict: an answer that missed its target is
		// withheld, like a request the worker shed, so the client can
		// retry rather than trust a late result.
		return nil, fmt.Errorf("%w: %w: %s answered in %s, after the strict %v ms target; try again later",
			errStrictLate, ErrOverloaded, vname, batching.FormatMs(elapsed), req.Requirements.LatencyMs)
	}
	c.cfg.Metrics.Served(vname, w.ID(), elapsed, out.QueueTime, out.ComputeTime, met)
	c.stats.served(vname, arrival, batch, out.BatchSize, elapsed, out.QueueTime, out.ComputeTime)

	if len(out.Outputs) != len(q.contract.Outputs) {
		return nil, fmt.Errorf("%s answered %d outputs; its contract has %d", vname, len(out.Outputs), len(q.contract.Outputs))
	}
	outputs := make([]inference.Tensor, len(q.outputs))
	for k, i := range q.outputs {
		outputs[k] = out.Outputs[i]
		outputs[k].Name = q.contract.Outputs[i].Name // the use case's name for it
		if n := req.Classification[outputs[k].Name]; n > 0 {
			var labels []string
			if i == 0 {
				labels = v.archs[x.Architecture].Labels
			}
			if outputs[k], err = classify(outputs[k], n, labels, q.contract.Batched); err != nil {
				return nil, err
			}
		}
	}
	params := map[string]any{
		"variant":      vname,
		"architecture": x.Architecture,
		"worker":       w.ID(),
		"replica":      replica,
		"accuracy":     x.Accuracy,
		"class":        x.Hardware,
		"action":       d.Action.String(),
		"reason":       d.Reason.String(),
		"decision":     rec.Message,
		"estimate_ms":  round3(d.EstimateMs),
		"latency_ms":   round3(rec.ObservedMs),
		"queue_ms":     round3(ms(out.QueueTime)),
		"compute_ms":   round3(ms(out.ComputeTime)),
		"batch_size":   int64(out.BatchSize),
		"met":          met,
		"cost_per_1k":  d.CostPer1k,
	}
	if rec.Load != "" && d.Action != selection.LoadAndServe {
		params["loading"] = rec.Load
	}
	return &inference.InferResponse{
		Model: req.Model, Version: req.Version, ID: req.ID, Parameters: params,
		Outputs: outputs,
	}, nil
}

// retryWhileLoading waits for a loading replica — on the controller's own
// load when it started it, else by polling briefly — and sends again.
func (c *Controller) retryWhileLoading(ctx context.Context, w Worker, replica, variant string, req worker.Request) (worker.Response, error) {
	c.mu.Lock()
	l := c.loads[variant+"@"+w.ID()]
	c.mu.Unlock()
	if l != nil {
		if _, err := l.wait(ctx); err != nil {
			return worker.Response{}, err
		}
		return w.Infer(ctx, replica, req)
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(30 * time.Second)
	defer limit.Stop()
	for {
		select {
		case <-ctx.Done():
			return worker.Response{}, ctx.Err()
		case <-limit.C:
			return worker.Response{}, fmt.Errorf("%w: %s is still loading after 30 s", worker.ErrNotReady, replica)
		case <-tick.C:
		}
		out, err := w.Infer(ctx, replica, req)
		if !errors.Is(err, worker.ErrNotReady) {
			return out, err
		}
	}
}

func refusal(d *selection.Decision, msg string) error {
	switch d.Reason {
	case selection.ReasonUnknown, selection.ReasonNotConfigured:
		return fmt.Errorf("%w: %s", ErrUnknownModel, msg)
	case selection.ReasonNotReady, selection.ReasonNoCapacity:
		return fmt.Errorf("%w: %s; try again shortly", ErrNotReady, msg)
	}
	return fmt.Errorf("%w: %s", ErrUnsatisfiable, msg)
}

// workerError maps the worker's errors onto the controller's.
func workerError(err error, variant string) error {
	switch {
	case errors.Is(err, worker.ErrOverloaded):
		return fmt.Errorf("%w: %s cannot take this request within its latency target now; try later (%v)", ErrOverloaded, variant, err)
	case errors.Is(err, worker.ErrNotReady), errors.Is(err, worker.ErrDraining), errors.Is(err, worker.ErrStopped),
		errors.Is(err, worker.ErrUnknownReplica), errors.Is(err, worker.ErrNoMemory):
		return fmt.Errorf("%w: %v; try again", ErrNotReady, err)
	case errors.Is(err, worker.ErrBadInput):
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	return err
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func round3(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return -1
	}
	return math.Round(v*1000) / 1000
}

// noteTraffic tells the traffic log what decision d served: the variant
// and the request's requirements, and the class of a load that fit no
// worker.
func noteTraffic(l *autoscale.TrafficLog, now time.Time, s *selection.Snapshot, asked health.Asked, d *selection.Decision) {
	var variant, unplaced string
	if d.Variant >= 0 {
		variant = s.Variant(d.Variant).Name
	}
	if d.Unplaced >= 0 {
		unplaced = s.Variant(d.Unplaced).Hardware
	}
	l.Note(now, variant, asked, unplaced)
}
