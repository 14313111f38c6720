package autoscale

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Cluster is the cluster autoscaler: it adds a worker of a class that is
// short and drains, then removes, a worker the provider started once it has
// served nothing for a cool-down. Like Models it keeps only its windows
// between steps; not safe for concurrent use.
type Cluster struct {
	cfg   ClusterConfig
	short map[string]time.Time // class short since
	why   map[string]string    // class → the latest reason it is short
	idle  map[string]time.Time // worker idle since
	last  time.Time            // last action
	cat   *catIndex            // reused while State.Epoch holds
}

// NewCluster makes a cluster autoscaler; cfg's zero fields take defaults.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Cluster{cfg: c, short: map[string]time.Time{}, why: map[string]string{}, idle: map[string]time.Time{}}, nil
}

// Config returns the configuration in use, defaults filled in.
func (c *Cluster) Config() ClusterConfig { return c.cfg }

// Step decides whether to add, drain or remove a worker now: at most one
// action per step, and none within Interval of the last. shortages are
// what the model autoscaler's step just reported.
func (c *Cluster) Step(now time.Time, st State, shortages []Shortage) []Action {
	w := newWorld(&st, c.cat)
	c.cat = w.catIndex
	total := len(st.Workers)
	for _, n := range st.Starting {
		total += n
	}

	// Which classes are short, and why.
	reasons := map[string][]string{}
	for _, s := range shortages {
		reasons[s.Class] = append(reasons[s.Class], s.Reason)
	}
	for class, n := range st.Unplaced {
		if n > 0 {
			reasons[class] = append(reasons[class], fmt.Sprintf("selection could not place %d load(s) on class %s for lack of room", n, class))
		}
	}
	byClass := map[string][]*Worker{}
	for i := range st.Workers {
		wk := &st.Workers[i]
		if wk.Healthy && !wk.Draining {
			byClass[wk.Class] = append(byClass[wk.Class], wk)
		}
	}
	for class, ws := range byClass {
		hot := true
		lo := 1.0
		for _, wk := range ws {
			lo = min(lo, wk.Utilization)
			hot = hot && wk.Utilization > c.cfg.UtilThreshold
		}
		if hot {
			reasons[class] = append(reasons[class], fmt.Sprintf("all %d workers of class %s are over %.0f%% busy (least %.0f%%)", len(ws), class, 100*c.cfg.UtilThreshold, 100*lo))
		}
	}
	for class := range c.short {
		if _, ok := reasons[class]; !ok {
			delete(c.short, class)
			delete(c.why, class)
		}
	}
	classes := make([]string, 0, len(reasons))
	for class, rs := range reasons {
		if _, ok := c.short[class]; !ok {
			c.short[class] = now
		}
		c.why[class] = strings.Join(rs, "; ")
		classes = append(classes, class)
	}
	slices.Sort(classes)

	// Which removable workers are idle.
	busy := map[string]bool{}
	replicas := map[string][]Replica{}
	for _, r := range st.Replicas {
		replicas[r.Worker] = append(replicas[r.Worker], r)
		if r.Busy() || r.Loading {
			busy[r.Worker] = true
		}
	}
	for id := range c.idle {
		if wk, ok := w.workers[id]; !ok || busy[id] || !wk.Removable {
			delete(c.idle, id)
		}
	}
	for _, wk := range st.Workers {
		if wk.Removable && !busy[wk.ID] {
			if _, ok := c.idle[wk.ID]; !ok {
				c.idle[wk.ID] = now
			}
		}
	}

	if !c.last.IsZero() && now.Sub(c.last) < c.cfg.Interval {
		return nil
	}
	// Add: the class short the longest first.
	for _, class := range classes {
		h, known := w.classes[class]
		switch {
		case !known || c.cfg.MaxWorkers == 0 || total >= c.cfg.MaxWorkers || st.Starting[class] > 0:
			continue
		case since(c.short[class], now) < c.cfg.OutWindow:
			continue
		}
		held := since(c.short[class], now)
		c.last = now
		delete(c.short, class)
		return []Action{{Kind: AddWorker, Class: h.Name, Reason: shortReason(c.why[class]),
			Message: fmt.Sprintf("class %s short for %s: %s; workers %d of at most %d", class, held.Round(100*time.Millisecond), c.why[class], total, c.cfg.MaxWorkers),
			Numbers: map[string]float64{"workers": float64(total), "max_workers": float64(c.cfg.MaxWorkers), "price_per_hour": h.PricePerHour, "short_s": held.Seconds()}}}
	}
	// Remove: a drained worker goes at once; an idle one is drained first.
	// Empty workers first, then the most recently started, then by ID.
	ids := make([]string, 0, len(c.idle))
	for id := range c.idle {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		wa, wb := w.workers[a], w.workers[b]
		return cmp.Or(cmp.Compare(len(replicas[a]), len(replicas[b])), wb.Started.Compare(wa.Started), cmp.Compare(a, b))
	})
	for _, id := range ids {
		wk := w.workers[id]
		if since(c.idle[id], now) < c.cfg.IdleCooldown || len(st.Workers)-1 < c.cfg.MinWorkers || len(reasons[wk.Class]) > 0 {
			continue
		}
		nums := map[string]float64{"idle_s": since(c.idle[id], now).Seconds(), "workers": float64(len(st.Workers)), "min_workers": float64(c.cfg.MinWorkers)}
		c.last = now
		if n := len(replicas[id]); n > 0 && !wk.Draining {
			return []Action{{Kind: DrainWorker, Class: wk.Class, Worker: id, Reason: ReasonWorkerIdle, Numbers: nums,
				Message: fmt.Sprintf("worker %s served nothing for %s; unloading its %d idle replica(s) before removing it", id, since(c.idle[id], now).Round(time.Second), n)}}
		}
		if len(replicas[id]) > 0 {
			continue // still draining
		}
		delete(c.idle, id)
		return []Action{{Kind: RemoveWorker, Class: wk.Class, Worker: id, Reason: ReasonDrained, Numbers: nums,
			Message: fmt.Sprintf("worker %s has no replicas and served nothing for %s; %d workers remain (floor %d)", id, time.Duration(nums["idle_s"]*float64(time.Second)).Round(time.Second), len(st.Workers)-1, c.cfg.MinWorkers)}}
	}
	return nil
}

func shortReason(why string) string {
	if strings.Contains(why, "busy") && !strings.Contains(why, "room") {
		return ReasonUtilization
	}
	return ReasonShortage
}
