package controller

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/provider"
	"github.com/infaas/infaas/worker"
)

// AutoscaleConfig configures the autoscalers the controller runs. The
// policies live in package autoscale; the controller builds their state
// from the workers' reports, carries out their actions and records every
// one in the event log.
type AutoscaleConfig struct {
	// Models enables the model autoscaler with its configuration.
	Models *autoscale.Config
	// Cluster enables the cluster autoscaler; it needs Provider.
	Cluster  *autoscale.ClusterConfig
	Provider provider.Provider
	// Every is how often the autoscalers step; 0 means one second.
	Every time.Duration
	// Leading, when set, says whether this controller may scale now: of
	// controllers sharing workers only the one holding the lease does
	// (kube.Elector). Nil: always.
	Leading func() bool
}

// Source names in the event log.
const (
	sourceModels  = "model-autoscaler"
	sourceCluster = "cluster-autoscaler"
	sourceMonitor = "monitor"
	sourceControl = "controller"
)

// scaler is the controller's autoscaling state: the two policies (owned
// by the one goroutine that steps them), the workers being drained, and
// the health flags last seen.
type scaler struct {
	models  *autoscale.Models
	cluster *autoscale.Cluster
	prov    provider.Provider
	every   time.Duration
	leading func() bool

	mu       sync.Mutex
	draining map[string]bool // worker IDs: nothing new is placed on them
	flags    map[string]worker.Health
	// noStart holds the classes the provider refused to start
	// (provider.ErrCapacity), until when they are left out of the
	// autoscalers' catalogue.
	noStart map[string]time.Time
}

// noStartFor is how long a class the provider cannot start is left out.
const noStartFor = 5 * time.Minute

func newScaler(cfg AutoscaleConfig) (*scaler, error) {
	s := &scaler{prov: cfg.Provider, every: cfg.Every, leading: cfg.Leading, draining: map[string]bool{}, flags: map[string]worker.Health{}, noStart: map[string]time.Time{}}
	if s.every <= 0 {
		s.every = time.Second
	}
	if cfg.Models != nil {
		m, err := autoscale.NewModels(*cfg.Models)
		if err != nil {
			return nil, err
		}
		s.models = m
	}
	if cfg.Cluster != nil {
		if cfg.Provider == nil {
			return nil, errors.New("controller: the cluster autoscaler needs a provider to start and stop workers")
		}
		cl, err := autoscale.NewCluster(*cfg.Cluster)
		if err != nil {
			return nil, err
		}
		s.cluster = cl
	}
	return s, nil
}

// isDraining reports whether worker id is being drained.
func (s *scaler) isDraining(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining[id]
}

// Events is the log of the actions the controller took on its own.
func (c *Controller) Events() *events.Log { return c.events }

// runAutoscale steps the monitor's flag watch and the autoscalers until
// ctx ends.
func (c *Controller) runAutoscale(ctx context.Context) {
	t := time.NewTicker(c.scale.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.autoscaleStep(ctx, c.now())
		}
	}
}

// autoscaleStep is one round: note flag changes, step the model
// autoscaler, then the cluster autoscaler with its shortages, and carry
// out their actions.
func (c *Controller) autoscaleStep(ctx context.Context, now time.Time) {
	st, ok := c.autoscaleState(now)
	if !ok {
		return
	}
	c.watchFlags()
	leading := c.scale.leading == nil || c.scale.leading()
	if !leading || c.scale.cluster == nil {
		// Another controller adds the workers: pool the loads this one's
		// queries could not place, for it to take.
		c.shareUnplaced(ctx, st.Unplaced)
	} else {
		c.takeUnplaced(ctx, &st)
	}
	if !leading {
		return
	}
	var shortages []autoscale.Shortage
	if m := c.scale.models; m != nil {
		res := m.Step(now, st)
		shortages = res.Shortages
		for _, a := range res.Actions {
			c.do(ctx, sourceModels, a)
		}
	}
	if cl := c.scale.cluster; cl != nil {
		for _, a := range cl.Step(now, st, shortages) {
			c.do(ctx, sourceCluster, a)
		}
	}
}

// shareUnplaced pools counts in the metadata store when it is shared
// (metadata.UnplacedLog), for the controller that adds workers.
func (c *Controller) shareUnplaced(ctx context.Context, counts map[string]int) {
	pool, ok := c.store.(metadata.UnplacedLog)
	if !ok || len(counts) == 0 {
		return
	}
	if err := pool.AddUnplaced(ctx, counts); err != nil {
		c.log.Debug("pool unplaced loads for the scaling controller", "err", err, "counts", counts)
	}
}

// takeUnplaced adds the loads other controllers pooled to st.Unplaced.
func (c *Controller) takeUnplaced(ctx context.Context, st *autoscale.State) {
	pool, ok := c.store.(metadata.UnplacedLog)
	if !ok {
		return
	}
	shared, err := pool.TakeUnplaced(ctx)
	if err != nil {
		c.log.Debug("take the unplaced loads other controllers pooled", "err", err)
		return
	}
	for class, n := range shared {
		if st.Unplaced == nil {
			st.Unplaced = map[string]int{}
		}
		st.Unplaced[class] += n
	}
}

// autoscaleState builds the autoscalers' view: the catalog, every worker
// with what it reports (and the loads this controller started that its
// report does not show yet), the traffic's requirements (this controller's
// decisions, merged with what the workers' replicas were asked by any
// controller) and the placement failures since the last step.
func (c *Controller) autoscaleState(now time.Time) (autoscale.State, bool) {
	v := c.view.Load()
	if v == nil {
		return autoscale.State{}, false
	}
	st := autoscale.State{Starting: map[string]int{}}
	for _, x := range v.variants {
		st.Variants = append(st.Variants, x)
	}
	slices.SortFunc(st.Variants, func(a, b catalog.Variant) int { return strings.Compare(a.Name, b.Name) })
	st.Traffic, st.Unplaced = c.traffic.Snapshot(now)

	owned := map[string]time.Time{}
	if c.scale.prov != nil {
		joined := map[string]bool{}
		for _, w := range c.workersNow() {
			joined[w.ID()] = true
		}
		for _, pw := range c.scale.prov.List() {
			if pw.State != provider.StateRunning {
				continue
			}
			owned[pw.ID] = pw.Started
			if !joined[pw.ID] {
				st.Starting[pw.Class]++
			}
		}
	}
	c.mu.Lock()
	loads := make([]*loadOp, 0, len(c.loads))
	for _, l := range c.loads {
		loads = append(loads, l)
	}
	c.mu.Unlock()
	have := map[string]bool{} // classes with a joined worker
	for _, w := range c.workersNow() {
		ws := w.State()
		have[ws.Hardware.Name] = true
		free := ws.MemoryCapacity - ws.MemoryReserved
		for _, r := range ws.Replicas {
			st.Replicas = append(st.Replicas, autoscale.Replica{ID: r.ID, Worker: ws.ID, Variant: r.Variant,
				Loading: r.State == worker.StateLoading, Draining: r.State == worker.StateDraining,
				Interfered: r.Health.Interfered, Overloaded: r.Health.Overloaded,
				Demand: health.Demand(r.Stats), Outstanding: r.Stats.Outstanding(), Slowness: r.Stats.Slowness})
			// What the requests the worker received asked — every
			// controller's, not only this one's (the traffic log holds
			// this controller's own decisions). Only what was stated:
			// a variant nobody's traffic is known for keeps the
			// autoscaler's cautious default (its own accuracy as the
			// floor), and a request that stated nothing, or came from a
			// controller that does not say, must not lift it.
			if a := r.Stats.Asked; a != (health.Asked{}) {
				st.Traffic[r.Variant] = st.Traffic[r.Variant].Merge(a)
			}
		}
		for _, l := range loads {
			if l.worker == ws.ID && !l.visible(ws) {
				free -= l.reserve
				st.Replicas = append(st.Replicas, autoscale.Replica{ID: "loading:" + l.key, Worker: ws.ID, Variant: l.variant.Name, Loading: true})
			}
		}
		st.Workers = append(st.Workers, autoscale.Worker{ID: ws.ID, Class: ws.Hardware.Name, Cores: ws.Hardware.Cores,
			MemoryBytes: ws.MemoryCapacity, FreeMemoryBytes: max(free, 0), Utilization: utilization(ws, v.variants),
			Healthy: ws.Running && !suspected(w), Draining: c.scale.isDraining(ws.ID), Removable: !owned[ws.ID].IsZero(), Started: owned[ws.ID]})
	}
	classes, out := c.scale.startable(c.cfg.Classes, have, now)
	// The epoch names the catalogue the policies index: the view's
	// generation and, when classes are left out, which.
	st.Classes, st.Epoch = classes, v.gen
	if len(out) > 0 {
		h := fnv.New64a()
		for _, name := range out {
			h.Write([]byte(name + "\x00"))
		}
		st.Epoch ^= (h.Sum64() | 1) << 40
	}
	return st, true
}

// utilization is the busy fraction of a worker's cores: each replica's
// served inferences over its profiled throughput on the worker's class,
// weighted by the cores its threads occupy.
func utilization(ws worker.Status, variants map[string]catalog.Variant) float64 {
	util := 0.0
	for _, r := range ws.Replicas {
		if r.State == worker.StateDraining {
			continue
		}
		v, ok := variants[r.Variant]
		if !ok {
			continue
		}
		p, ok := v.ProfileOn(ws.Hardware.Name)
		if !ok {
			p = v.Profile
		}
		util += health.Busy(r.Stats, p.ThroughputQPS, v.Threads, ws.Hardware.Cores)
	}
	return min(util, 1)
}

// suspected reports whether a remote worker is out of routing after a
// failed call.
func suspected(w Worker) bool {
	r, ok := w.(*remote)
	return ok && r.suspect.Load()
}

// watchFlags records every change of a replica's health flags in the
// event log.
func (c *Controller) watchFlags() {
	seen := map[string]bool{}
	for _, w := range c.workersNow() {
		ws := w.State()
		for _, r := range ws.Replicas {
			key := snapshotID(ws.ID, r.ID)
			seen[key] = true
			c.scale.mu.Lock()
			old := c.scale.flags[key]
			c.scale.flags[key] = r.Health
			c.scale.mu.Unlock()
			e := events.Event{Source: sourceMonitor, Architecture: r.Architecture, Variant: r.Variant, Worker: ws.ID, Class: ws.Hardware.Name,
				Numbers: map[string]float64{"compute_p99_ms": float64(r.Stats.ComputeP99) / 1e6, "compute_mean_ms": float64(r.Stats.ComputeMean) / 1e6, "inferences_per_second": r.Stats.InferencesPerSecond,
					"outstanding": float64(r.Stats.Outstanding())}}
			msg := strings.Join(r.Health.Reasons, "; ")
			switch {
			case r.Health.Interfered && !old.Interfered:
				e.Action, e.Reason, e.Message = "interfered", "interference", fmt.Sprintf("replica %s: %s; new work goes to other replicas while any can serve", r.ID, msg)
			case r.Health.Overloaded && !old.Overloaded:
				e.Action, e.Reason, e.Message = "overloaded", "overload", fmt.Sprintf("replica %s: %s; new work goes to other replicas while any can serve", r.ID, msg)
			case !r.Health.Interfered && !r.Health.Overloaded && (old.Interfered || old.Overloaded):
				e.Action, e.Reason, e.Message = "cleared", "healthy", fmt.Sprintf("replica %s is neither interfered nor overloaded any more", r.ID)
			default:
				continue
			}
			c.events.Append(e)
			c.log.Info("replica health changed", "replica", key, "action", e.Action, "reason", msg)
		}
	}
	c.scale.mu.Lock()
	for k := range c.scale.flags {
		if !seen[k] {
			delete(c.scale.flags, k)
		}
	}
	c.scale.mu.Unlock()
}

// do carries out one action and records it.
func (c *Controller) do(ctx context.Context, source string, a autoscale.Action) {
	e := c.events.Append(events.Event{Source: source, Action: string(a.Kind), Reason: a.Reason, Message: a.Message,
		Architecture: a.Architecture, Variant: a.Variant, From: a.From, Worker: a.Worker, Class: a.Class, Numbers: a.Numbers})
	c.log.Info("autoscale", "source", source, "action", a.Kind, "variant", a.Variant, "worker", a.Worker, "class", a.Class, "reason", a.Reason, "message", a.Message)
	failed := func(err error) {
		c.events.Append(events.Event{Source: sourceControl, Action: "failed", Reason: string(a.Kind), Architecture: a.Architecture,
			Variant: a.Variant, Worker: a.Worker, Class: a.Class, Message: fmt.Sprintf("event %d (%s) failed: %v", e.Seq, a.Kind, err)})
		c.log.Warn("autoscale action failed", "action", a.Kind, "variant", a.Variant, "worker", a.Worker, "err", err)
	}
	switch a.Kind {
	case autoscale.Replicate, autoscale.Switch, autoscale.Downgrade:
		v := c.view.Load()
		variant, ok := v.variants[a.Variant]
		w := c.worker(a.Worker)
		if !ok || w == nil {
			failed(fmt.Errorf("variant %s or worker %s is gone", a.Variant, a.Worker))
			return
		}
		l := c.startLoad(variant, v.archs[variant.Architecture], w, a.Message)
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			if _, err := l.wait(ctx); err != nil && ctx.Err() == nil {
				failed(err)
			}
		}()
	case autoscale.Unload:
		w := c.worker(a.Worker)
		if w == nil {
			return // the worker left, and its replicas with it
		}
		if strings.HasPrefix(a.Replica, "loading:") {
			return // not a replica yet; the next step sees it
		}
		// Out of routing first, so that no request is sent to it while
		// it drains.
		c.leave(a.Worker, a.Replica)
		c.refreshState()
		if err := w.Unload(a.Replica); err != nil && !errors.Is(err, worker.ErrUnknownReplica) {
			c.stay(a.Worker, a.Replica)
			failed(err)
		}
		c.refreshState()
	case autoscale.AddWorker:
		h, ok := catalog.FindClass(c.cfg.Classes, a.Class)
		if !ok {
			failed(fmt.Errorf("unknown class %s", a.Class))
			return
		}
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			pw, err := c.scale.prov.Start(ctx, h)
			if errors.Is(err, provider.ErrCapacity) {
				c.scale.refuse(h.Name, time.Now().Add(noStartFor))
				err = fmt.Errorf("%w; class %s is left out of autoscaling for %s", err, h.Name, noStartFor)
			}
			if err != nil {
				failed(err)
				return
			}
			c.log.Info("worker started", "worker", pw.ID, "class", pw.Class, "pid", pw.PID)
		}()
	case autoscale.DrainWorker:
		c.scale.mu.Lock()
		c.scale.draining[a.Worker] = true
		c.scale.mu.Unlock()
		c.refreshState()
		if w := c.worker(a.Worker); w != nil {
			for _, r := range w.State().Replicas {
				if r.State == worker.StateDraining {
					continue
				}
				if err := w.Unload(r.ID); err != nil && !errors.Is(err, worker.ErrUnknownReplica) {
					failed(err)
				}
			}
		}
	case autoscale.RemoveWorker:
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			err := c.scale.prov.Stop(ctx, a.Worker)
			c.scale.mu.Lock()
			delete(c.scale.draining, a.Worker)
			c.scale.mu.Unlock()
			if err != nil {
				failed(err)
			}
		}()
	}
}

// refuse leaves class out of the autoscalers' catalogue until until.
func (s *scaler) refuse(class string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noStart[class] = until
}

// startable is classes less those the provider refused to start and no
// joined worker has (a class with workers stays: its replicas are real),
// and the names left out, in catalogue order. Expired refusals end here.
func (s *scaler) startable(classes []catalog.HardwareClass, have map[string]bool, now time.Time) (in []catalog.HardwareClass, out []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for class, until := range s.noStart {
		if !now.Before(until) {
			delete(s.noStart, class)
		}
	}
	if len(s.noStart) == 0 {
		return classes, nil
	}
	in = make([]catalog.HardwareClass, 0, len(classes))
	for _, h := range classes {
		if _, refused := s.noStart[h.Name]; refused && !have[h.Name] {
			out = append(out, h.Name)
			continue
		}
		in = append(in, h)
	}
	return in, out
}
