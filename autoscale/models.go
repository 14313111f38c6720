package autoscale

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Models is the model autoscaler. It keeps what its windows need between
// steps (when each condition started holding, the last action per
// architecture, switches in progress) and nothing else; Step is
// deterministic for a sequence of states and times. Not safe for
// concurrent use: one loop owns it.
type Models struct {
	cfg     Config
	up      map[groupKey]time.Time // scale-up condition holding since
	chasing map[groupKey]bool      // last scale-up fell short: go on towards Target (see Step)
	down    map[groupKey]time.Time // scale-down (or downgrade) condition holding since
	idle    map[string]time.Time   // architecture without traffic since
	last    map[string]time.Time   // architecture's last action
	pending map[string]*switchPlan // architecture → switch in progress
	cat     *catIndex              // reused while State.Epoch holds
}

type groupKey struct{ variant, class string }

// switchPlan is a switch or downgrade in progress: to's replicas load, then
// from's on fromClass are unloaded.
type switchPlan struct {
	kind          Kind
	from, to      string
	fromClass     string
	toClass       string
	want          int
	started       time.Time
	reason, cause string
}

// switchTimeout is how long a switch may wait for its replicas before it
// is given up (a load failed); the old variant then stays.
const switchTimeout = 2 * time.Minute

// NewModels makes a model autoscaler; cfg's zero fields take defaults.
func NewModels(cfg Config) (*Models, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Models{cfg: c, up: map[groupKey]time.Time{}, chasing: map[groupKey]bool{}, down: map[groupKey]time.Time{},
		idle: map[string]time.Time{}, last: map[string]time.Time{}, pending: map[string]*switchPlan{}}, nil
}

// Config returns the configuration in use, defaults filled in.
func (m *Models) Config() Config { return m.cfg }

// group is one variant's replicas on one class.
type group struct {
	key      groupKey
	in       *instance
	replicas []Replica // not draining
	demand   float64
	busy     bool
	able     int // replicas that count towards capacity (not interfered)
	ready    int // replicas not loading
	// eff is what the able replicas sustain in units of one replica at
	// its profile: Σ 1 ÷ slowness. A replica running 1.5× slower than
	// profiled carries two thirds of what its profile says.
	eff float64
}

// slowness is g's able replicas' mean slowness (1 when none is able).
func (g *group) slowness() float64 {
	if g.able == 0 || g.eff <= 0 {
		return 1
	}
	return float64(g.able) / g.eff
}

// slowNote says how much slower than profiled g's replicas run, when
// that takes a noticeable part of their capacity.
func (g *group) slowNote() string {
	if s := g.slowness(); s >= 1.05 {
		return fmt.Sprintf(", running %.2f× slower than profiled", s)
	}
	return ""
}

// Step decides what to do now. Actions within one step never together
// over-commit a worker's memory or cores.
func (m *Models) Step(now time.Time, st State) Result {
	var res Result
	if m.cfg.Static {
		return res
	}
	w := newWorld(&st, m.cat)
	m.cat = w.catIndex
	rm := newRoom(w)
	archs, groups := m.groups(w)
	live := map[groupKey]bool{}
	for _, a := range archs {
		for _, g := range groups[a] {
			live[g.key] = true
		}
		m.arch(now, w, rm, a, groups[a], &res)
	}
	// Forget the windows of groups that are gone.
	for k := range m.up {
		if !live[k] {
			delete(m.up, k)
		}
	}
	for k := range m.down {
		if !live[k] {
			delete(m.down, k)
		}
	}
	for a := range m.idle {
		if _, ok := groups[a]; !ok {
			delete(m.idle, a)
		}
	}
	return res
}

// groups sorts the replicas into groups per architecture; architectures
// come back sorted.
func (m *Models) groups(w *world) ([]string, map[string][]*group) {
	byKey := map[groupKey]*group{}
	out := map[string][]*group{}
	for _, r := range w.st.Replicas {
		wk, ok := w.workers[r.Worker]
		if !ok || r.Draining {
			continue
		}
		k := groupKey{r.Variant, wk.Class}
		g, ok := byKey[k]
		if !ok {
			in := w.inst(r.Variant, wk.Class)
			if in == nil {
				continue // unprofiled there, or unknown: nothing to reason with
			}
			g = &group{key: k, in: in}
			byKey[k] = g
			a := in.v.Architecture
			out[a] = append(out[a], g)
		}
		g.replicas = append(g.replicas, r)
		g.demand += r.Demand
		g.busy = g.busy || r.Busy()
		if !r.Interfered {
			g.able++
			g.eff += 1 / max(r.Slowness, 1)
		}
		if !r.Loading {
			g.ready++
		}
	}
	archs := make([]string, 0, len(out))
	for a, gs := range out {
		archs = append(archs, a)
		slices.SortFunc(gs, func(x, y *group) int {
			return cmp.Or(cmp.Compare(x.key.variant, y.key.variant), cmp.Compare(x.key.class, y.key.class))
		})
	}
	slices.Sort(archs)
	return archs, out
}

// traffic is what group g's requests asked for.
func (m *Models) traffic(w *world, g *group) Traffic {
	if t, ok := w.st.Traffic[g.key.variant]; ok {
		return t
	}
	return Traffic{MinAccuracy: g.in.v.Accuracy}
}

// arch runs the rules for one architecture.
func (m *Models) arch(now time.Time, w *world, rm *room, a string, gs []*group, res *Result) {
	if p := m.pending[a]; p != nil {
		m.advance(now, w, a, p, gs, res)
		return
	}
	var demand float64
	busy := false
	for _, g := range gs {
		demand += g.demand
		busy = busy || g.busy
	}
	if busy {
		delete(m.idle, a)
	} else if _, ok := m.idle[a]; !ok {
		m.idle[a] = now
	}
	cooling := now.Sub(m.last[a]) < m.cfg.Cooldown && !m.last[a].IsZero()

	// Scale up: the group whose demand is furthest above its capacity. A
	// group whose last scale-up fell short (no room for all it wanted)
	// goes on towards Target: it stopped there only for lack of room, and
	// re-reporting the shortage each step is what brings the workers that
	// make room (the cluster autoscaler acts on a shortage that lasts).
	var upG *group
	var upRatio float64
	for _, g := range gs {
		t := m.traffic(w, g)
		c, _, _ := g.in.capacity(t.LatencyMs, m.cfg.LatencyShare)
		capTotal := g.eff * c
		if m.chasing[g.key] && !(g.demand > m.cfg.Target*capTotal) {
			delete(m.chasing, g.key)
		}
		if g.demand > 0 && (g.demand > m.cfg.ScaleUpAt*capTotal || m.chasing[g.key]) {
			if _, ok := m.up[g.key]; !ok {
				m.up[g.key] = now
			}
			ratio := math.Inf(1)
			if capTotal > 0 {
				ratio = g.demand / capTotal
			}
			if since(m.up[g.key], now) >= m.cfg.UpWindow && (upG == nil || ratio > upRatio) {
				upG, upRatio = g, ratio
			}
		} else {
			delete(m.up, g.key)
		}
	}
	if upG != nil && !cooling {
		if m.scaleUp(now, w, rm, a, upG, res) {
			m.last[a] = now
		}
		return
	}

	// Architecture idle long enough: unload everything.
	if !busy && m.cfg.IdleUnload > 0 && since(m.idle[a], now) >= m.cfg.IdleUnload {
		for _, g := range gs {
			for _, r := range g.replicas {
				res.Actions = append(res.Actions, Action{Kind: Unload, Architecture: a, Variant: r.Variant, Class: g.key.class,
					Worker: r.Worker, Replica: r.ID, Reason: ReasonIdle,
					Message: fmt.Sprintf("architecture %s served nothing for %s (idle unload after %s)", a, since(m.idle[a], now).Round(time.Second), m.cfg.IdleUnload),
					Numbers: map[string]float64{"idle_s": since(m.idle[a], now).Seconds()}})
			}
		}
		delete(m.idle, a)
		m.last[a] = now
		return
	}

	// Scale down: at most one step per architecture per cool-down.
	othersReady := func(g *group) bool {
		for _, o := range gs {
			if o != g && o.ready > 0 {
				return true
			}
		}
		return false
	}
	for _, g := range gs {
		act, commit, ok := m.downFor(now, w, rm, a, g, othersReady(g))
		if !ok {
			delete(m.down, g.key)
			continue
		}
		if _, held := m.down[g.key]; !held {
			m.down[g.key] = now
		}
		if cooling || since(m.down[g.key], now) < m.cfg.DownWindow {
			continue
		}
		if commit != nil {
			commit()
		}
		res.Actions = append(res.Actions, act...)
		m.last[a] = now
		delete(m.down, g.key)
		return
	}
}

// downFor returns the scale-down action group g calls for now, if any:
// remove one replica when the rest carry the demand, unload an idle group
// whose architecture is served by others, or downgrade a lone replica to
// a cheaper variant that carries the demand alone. It changes nothing:
// commit, when not nil, books what the actions take once they are taken.
func (m *Models) downFor(now time.Time, w *world, rm *room, a string, g *group, othersReady bool) ([]Action, func(), bool) {
	t := m.traffic(w, g)
	c, b, p99 := g.in.capacity(t.LatencyMs, m.cfg.LatencyShare)
	n := len(g.replicas)
	if g.ready < n { // still loading: judge once it is in place
		return nil, nil, false
	}
	nums := map[string]float64{"demand_qps": g.demand, "capacity_qps": g.eff * c, "replicas": float64(n),
		"replica_capacity_qps": c, "batch": float64(b), "p99_ms": p99, "cost_per_hour": float64(n) * g.in.costH,
		"slowness": g.slowness()}
	switch {
	case n >= 2:
		// Without one replica, at the able ones' mean slowness.
		remain := float64(min(g.able, n-1)) * c / g.slowness()
		if g.demand >= m.cfg.ScaleDownAt*remain {
			return nil, nil, false
		}
		r := m.victim(w, g)
		nums["capacity_after_qps"] = remain
		return []Action{{Kind: Unload, Architecture: a, Variant: g.key.variant, Class: g.key.class, Worker: r.Worker, Replica: r.ID,
			Reason: ReasonLowDemand, Numbers: nums,
			Message: fmt.Sprintf("demand %.1f/s stays below %.0f%% of the %.1f/s that %d replicas of %s sustain without this one (%.1f/s each at batch %d, p99 %s%s); saves %s",
				g.demand, 100*m.cfg.ScaleDownAt, remain, n-1, g.key.variant, c, b, ms(p99), g.slowNote(), usdh(g.in.costH))}}, nil, true
	case !g.busy && othersReady:
		r := g.replicas[0]
		return []Action{{Kind: Unload, Architecture: a, Variant: g.key.variant, Class: g.key.class, Worker: r.Worker, Replica: r.ID,
			Reason: ReasonIdle, Numbers: nums,
			Message: fmt.Sprintf("%s on %s serves nothing while other variants of %s serve its traffic; saves %s", g.key.variant, g.key.class, a, usdh(g.in.costH))}}, nil, true
	case g.busy && g.demand > 0 && !m.cfg.NoVertical && !t.Pinned:
		// Downgrade: the cheapest variant that carries the demand alone.
		var best *instance
		var bestC float64
		for _, in := range w.instances(a) {
			if in == g.in || in.costH >= g.in.costH || !in.meets(t, m.cfg.LatencyShare) {
				continue
			}
			cw, _, _ := in.capacity(t.LatencyMs, m.cfg.LatencyShare)
			if g.demand >= m.cfg.ScaleDownAt*cw {
				continue
			}
			if best == nil || in.costH < best.costH || in.costH == best.costH && cw > bestC {
				best, bestC = in, cw
			}
		}
		if best == nil {
			return nil, nil, false
		}
		hosts := rm.clone().place(w, best, 1, nil)
		if hosts == nil {
			return nil, nil, false
		}
		commit := func() {
			rm.place(w, best, 1, nil)
			m.pending[a] = &switchPlan{kind: Downgrade, from: g.key.variant, fromClass: g.key.class, to: best.v.Name, toClass: best.class.Name, want: 1, started: now}
		}
		nums["to_capacity_qps"], nums["to_cost_per_hour"] = bestC, best.costH
		return []Action{{Kind: Downgrade, Architecture: a, Variant: best.v.Name, From: g.key.variant, Class: best.class.Name, Worker: hosts[0],
			Reason: ReasonLowDemand, Numbers: nums,
			Message: fmt.Sprintf("demand %.1f/s is below %.0f%% of what %s alone sustains on %s (%.1f/s) at %s instead of %s for %s; %s is unloaded once it is ready",
				g.demand, 100*m.cfg.ScaleDownAt, best.v.Name, best.class.Name, bestC, usdh(best.costH), usdh(g.in.costH), g.key.variant, g.key.variant)}}, commit, true
	}
	return nil, nil, false
}

// victim picks the replica of g to remove: an interfered one first, then
// one on a worker the provider may remove (the most recently started
// first, so the workers added last empty first), then the least loaded,
// then by ID.
func (m *Models) victim(w *world, g *group) Replica {
	rs := slices.Clone(g.replicas)
	slices.SortFunc(rs, func(x, y Replica) int {
		b := func(v bool) int {
			if v {
				return 0
			}
			return 1
		}
		rx, ry := false, false
		var sx, sy time.Time
		if wk := w.workers[x.Worker]; wk != nil {
			rx, sx = wk.Removable, wk.Started
		}
		if wk := w.workers[y.Worker]; wk != nil {
			ry, sy = wk.Removable, wk.Started
		}
		return cmp.Or(cmp.Compare(b(x.Interfered), b(y.Interfered)), cmp.Compare(b(rx), b(ry)), sy.Compare(sx),
			cmp.Compare(x.Demand+float64(x.Outstanding), y.Demand+float64(y.Outstanding)), cmp.Compare(x.ID, y.ID))
	})
	return rs[0]
}

// Option is one way to give a group the capacity its demand needs.
type Option struct {
	Kind     Kind // Replicate or Switch
	Variant  string
	Class    string
	Count    int     // replicas to load
	CostH    float64 // USD per hour of the group's traffic once in place
	Capacity float64 // samples per second once in place
	Hosts    []string
}

// scaleUp weighs the options for group g and takes the cheapest that fits;
// it reports a shortage when none does. It returns whether it acted.
func (m *Models) scaleUp(now time.Time, w *world, rm *room, a string, g *group, res *Result) bool {
	t := m.traffic(w, g)
	c, b, p99 := g.in.capacity(t.LatencyMs, m.cfg.LatencyShare)
	have := g.eff * c
	want := g.demand / m.cfg.Target
	avoid := map[string]bool{}
	for _, r := range g.replicas {
		if r.Interfered || r.Overloaded {
			avoid[r.Worker] = true
		}
	}
	var opts []Option
	// Horizontal: more replicas of the variant, on its class or another.
	for _, in := range w.instances(a) {
		if in.v.Name != g.key.variant {
			continue
		}
		ci, _, _ := in.capacity(t.LatencyMs, m.cfg.LatencyShare)
		if ci <= 0 {
			continue
		}
		k := max(int(math.Ceil((want-have)/ci)), 1)
		existing := 0
		if in.class.Name == g.key.class {
			existing = len(g.replicas)
		}
		if existing+k > m.cfg.MaxReplicas {
			k = m.cfg.MaxReplicas - existing
		}
		if k < 1 {
			continue
		}
		opts = append(opts, Option{Kind: Replicate, Variant: in.v.Name, Class: in.class.Name, Count: k,
			CostH: float64(len(g.replicas))*g.in.costH + float64(k)*in.costH, Capacity: have + float64(k)*ci})
	}
	// Vertical: replace the group with another variant of the architecture.
	if !m.cfg.NoVertical && !t.Pinned {
		for _, in := range w.instances(a) {
			if in.v.Name == g.key.variant || !in.meets(t, m.cfg.LatencyShare) {
				continue
			}
			ci, _, _ := in.capacity(t.LatencyMs, m.cfg.LatencyShare)
			if ci <= 0 {
				continue
			}
			k := max(int(math.Ceil(want/ci)), 1)
			if k > m.cfg.MaxReplicas {
				continue
			}
			opts = append(opts, Option{Kind: Switch, Variant: in.v.Name, Class: in.class.Name, Count: k,
				CostH: float64(k) * in.costH, Capacity: float64(k) * ci})
		}
	}
	// Fit each option: all its replicas, or as many as there is room for.
	for i := range opts {
		o := &opts[i]
		in := w.inst(o.Variant, o.Class)
		trial := rm.clone()
		for range o.Count {
			h := trial.place(w, in, 1, avoid)
			if h == nil {
				break
			}
			o.Hosts = append(o.Hosts, h[0])
		}
	}
	slices.SortStableFunc(opts, func(x, y Option) int {
		kx, ky := 0, 0
		if x.Kind == Switch {
			kx = 1
		}
		if y.Kind == Switch {
			ky = 1
		}
		return cmp.Or(cmp.Compare(x.CostH, y.CostH), cmp.Compare(kx, ky), cmp.Compare(y.Capacity, x.Capacity),
			cmp.Compare(x.Variant, y.Variant), cmp.Compare(x.Class, y.Class))
	})
	// The cheapest option that fits whole and reaches the demand; else the
	// one that adds the most now (a class is short either way).
	var chosen *Option
	short := ""
	for i := range opts {
		if o := &opts[i]; len(o.Hosts) == o.Count && o.Capacity*m.cfg.ScaleUpAt >= g.demand {
			chosen = o
			break
		}
	}
	if chosen == nil && len(opts) > 0 {
		short = opts[0].Class
		best := 0.0
		for i := range opts {
			o := &opts[i]
			if len(o.Hosts) == 0 || o.Kind == Switch && len(o.Hosts) < o.Count {
				continue // a switch is only worth it whole
			}
			in := w.inst(o.Variant, o.Class)
			ci, _, _ := in.capacity(t.LatencyMs, m.cfg.LatencyShare)
			gain := float64(len(o.Hosts)) * ci
			if gain > best {
				chosen, best = o, gain
			}
		}
		if chosen != nil && len(chosen.Hosts) < chosen.Count {
			in := w.inst(chosen.Variant, chosen.Class)
			ci, _, _ := in.capacity(t.LatencyMs, m.cfg.LatencyShare)
			chosen.CostH -= float64(chosen.Count-len(chosen.Hosts)) * in.costH
			chosen.Capacity -= float64(chosen.Count-len(chosen.Hosts)) * ci
			chosen.Count = len(chosen.Hosts)
		}
	}
	reach := opts
	if chosen != nil {
		in := w.inst(chosen.Variant, chosen.Class)
		for range chosen.Count {
			rm.place(w, in, 1, avoid)
		}
	}
	cause := ReasonDemand
	if g.able < len(g.replicas) {
		cause = ReasonInterfered
	}
	nums := map[string]float64{"demand_qps": g.demand, "capacity_qps": have, "replicas": float64(len(g.replicas)),
		"replica_capacity_qps": c, "batch": float64(b), "p99_ms": p99, "target_ms": t.LatencyMs,
		"cost_per_hour": float64(len(g.replicas)) * g.in.costH, "options": float64(len(reach)), "slowness": g.slowness()}
	why := fmt.Sprintf("demand %.1f/s exceeds %.0f%% of the %.1f/s that %d usable of %d replicas of %s sustain on %s (%.1f/s each at batch %d, p99 %s",
		g.demand, 100*m.cfg.ScaleUpAt, have, g.able, len(g.replicas), g.key.variant, g.key.class, c, b, ms(p99))
	if !(g.demand > m.cfg.ScaleUpAt*have) {
		why = fmt.Sprintf("demand %.1f/s is still over the %.0f%% target of the %.1f/s that %d usable of %d replicas of %s sustain on %s, where an earlier scale-up stopped for lack of room (%.1f/s each at batch %d, p99 %s",
			g.demand, 100*m.cfg.Target, have, g.able, len(g.replicas), g.key.variant, g.key.class, c, b, ms(p99))
	}
	if t.LatencyMs > 0 {
		why += fmt.Sprintf(" within %.0f%% of the %s target", 100*m.cfg.LatencyShare, ms(t.LatencyMs))
	}
	why += g.slowNote() + ")"
	if short != "" {
		res.Shortages = append(res.Shortages, Shortage{Class: short, Reason: fmt.Sprintf("%s; no worker of class %s has room for %s (%s)",
			why, short, describe(reach[0]), usdh(reach[0].CostH))})
		m.chasing[g.key] = true
	} else {
		delete(m.chasing, g.key)
	}
	if chosen == nil {
		return false
	}
	why += "; options: " + compare(reach, chosen)
	nums["cost_chosen_per_hour"] = chosen.CostH
	if o := bestOf(reach, Replicate); o != nil {
		nums["cost_replicate_per_hour"] = o.CostH
	}
	if o := bestOf(reach, Switch); o != nil {
		nums["cost_switch_per_hour"] = o.CostH
	}
	nums["capacity_after_qps"] = chosen.Capacity
	for _, h := range chosen.Hosts {
		act := Action{Kind: chosen.Kind, Architecture: a, Variant: chosen.Variant, Class: chosen.Class, Worker: h,
			Reason: cause, Message: why, Numbers: nums}
		if chosen.Kind == Switch {
			act.From = g.key.variant
		}
		res.Actions = append(res.Actions, act)
	}
	if chosen.Kind == Switch {
		m.pending[a] = &switchPlan{kind: Switch, from: g.key.variant, fromClass: g.key.class, to: chosen.Variant, toClass: chosen.Class,
			want: chosen.Count, started: now}
	}
	return true
}

func describe(o Option) string {
	if o.Kind == Replicate {
		return fmt.Sprintf("+%d replica(s) of %s on %s", o.Count, o.Variant, o.Class)
	}
	return fmt.Sprintf("switch to %d× %s on %s", o.Count, o.Variant, o.Class)
}

// compare lists up to four options with their cost, the chosen one marked.
func compare(opts []Option, chosen *Option) string {
	var parts []string
	for i, o := range opts {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("%d more", len(opts)-4))
			break
		}
		mark := ""
		if len(o.Hosts) < o.Count {
			mark = fmt.Sprintf(" (room for %d)", len(o.Hosts))
		}
		if o.Kind == chosen.Kind && o.Variant == chosen.Variant && o.Class == chosen.Class {
			mark += " ← chosen"
		}
		parts = append(parts, fmt.Sprintf("%s %s for %.1f/s%s", describe(o), usdh(o.CostH), o.Capacity, mark))
	}
	return strings.Join(parts, "; ")
}

func bestOf(opts []Option, k Kind) *Option {
	for i := range opts {
		if opts[i].Kind == k {
			return &opts[i]
		}
	}
	return nil
}

// advance moves a switch in progress: once the new variant's replicas are
// ready, the old ones are unloaded; a switch whose loads never show up is
// given up.
func (m *Models) advance(now time.Time, w *world, a string, p *switchPlan, gs []*group, res *Result) {
	var to, from *group
	for _, g := range gs {
		switch g.key {
		case groupKey{p.to, p.toClass}:
			to = g
		case groupKey{p.from, p.fromClass}:
			from = g
		}
	}
	switch {
	case from == nil: // the old replicas are gone already
		delete(m.pending, a)
	case to != nil && to.ready >= p.want || to != nil && to.ready > 0 && now.Sub(p.started) > switchTimeout:
		for _, r := range from.replicas {
			res.Actions = append(res.Actions, Action{Kind: Unload, Architecture: a, Variant: p.from, From: p.from, Class: p.fromClass,
				Worker: r.Worker, Replica: r.ID, Reason: ReasonSwitchDone,
				Message: fmt.Sprintf("%s replaces %s: %d replica(s) of %s are ready", p.to, p.from, to.ready, p.to),
				Numbers: map[string]float64{"ready": float64(to.ready), "wanted": float64(p.want)}})
		}
		delete(m.pending, a)
		m.last[a] = now
	case now.Sub(p.started) > switchTimeout:
		delete(m.pending, a) // the loads failed: keep the old variant
	}
}
