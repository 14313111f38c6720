package selection

import "math"

// The estimates selection reasons with: latency at a batch, what a replica
// adds to it, which worker can host a variant, and how usable a replica is.

// p99At is catalog.Profile.P99At over the pre-indexed profile, except that
// a variant without a latency profile is infinitely slow (it meets no
// latency target) rather than free.
func (c *catIndex) p99At(sp span, b int) float64 {
	bs := c.batches[sp.off : sp.off+sp.n]
	ys := c.p99[sp.off : sp.off+sp.n]
	switch len(bs) {
	case 0:
		return math.Inf(1)
	case 1:
		return ys[0] * float64(b) / float64(bs[0])
	}
	i := 0
	for i < len(bs) && int(bs[i]) < b {
		i++
	}
	if i < len(bs) && int(bs[i]) == b {
		return ys[i]
	}
	lo, hi := i-1, i
	if i == 0 {
		lo, hi = 0, 1
	} else if i == len(bs) {
		lo, hi = len(bs)-2, len(bs)-1
	}
	x0, x1 := float64(bs[lo]), float64(bs[hi])
	y0, y1 := ys[lo], ys[hi]
	y := y0 + (y1-y0)*(float64(b)-x0)/(x1-x0)
	if y < 0 {
		y = 0
	}
	return y
}

// p99 is variant v's estimated p99 latency in ms at batch b.
func (s *Snapshot) p99(v int32, b int) float64 {
	return s.cat.p99At(s.cat.vi[v].prof, b)
}

// estimate is replica j's estimated latency in ms for a request whose
// compute takes p ms by the profile: what is left of its load, plus its
// queue, plus p scaled by the replica's slowness.
func (s *Snapshot) estimate(j int32, p float64, nowNs int64) float64 {
	ri := &s.rep[j]
	est := p*ri.slow + s.queueMs(j)
	if ri.loading {
		est += s.loadLeftMs(j, nowNs)
	}
	return est
}

// queueMs is how long replica j's outstanding work takes: the state's
// count, or the dispatcher's live count when that is larger.
func (s *Snapshot) queueMs(j int32) float64 {
	ri := &s.rep[j]
	if ri.live == nil {
		return ri.queueMs
	}
	n := ri.live.Load()
	if n <= 0 {
		return ri.queueMs
	}
	return max(ri.queueMs, float64(n)*ri.msPer)
}

// loadLeftMs is how long loading replica j still needs.
func (s *Snapshot) loadLeftMs(j int32, nowNs int64) float64 {
	ri := &s.rep[j]
	if !ri.loading {
		return 0
	}
	if ri.loadEndNs == 0 {
		return s.cat.vi[ri.variant].loadMs
	}
	return max(0, float64(ri.loadEndNs-nowNs)/1e6)
}

// hostFail says why a worker cannot host a new replica of an instance.
type hostFail uint8

const (
	hostOK        hostFail = iota
	hostUnhealthy          // the worker is unhealthy or draining
	hostProvider           // another execution provider
	hostClass              // another hardware class than the instance's profile
	hostCores              // a CPU instance needs Threads ≤ the worker's cores
	hostMemory             // less free memory than the instance's peak memory
)

// hostCheck says whether worker w can host a new replica of instance v:
// healthy, same execution provider, same hardware class as v's profile,
// enough cores for a CPU variant's threads, enough free memory.
func (c *catIndex) hostCheck(v int32, w *Worker) hostFail {
	cv := &c.variants[v]
	switch {
	case !w.Healthy:
		return hostUnhealthy
	case provider(cv.Provider) != provider(w.Class.Provider):
		return hostProvider
	case cv.Hardware != w.Class.Name:
		return hostClass
	case provider(cv.Provider) == "cpu" && workerCores(w) > 0 && cv.Threads > workerCores(w):
		return hostCores
	case w.FreeMemoryBytes < c.vi[v].need:
		return hostMemory
	}
	return hostOK
}

func provider(p string) string {
	if p == "" {
		return "cpu"
	}
	return p
}

func workerCores(w *Worker) int {
	if w.Cores > 0 {
		return w.Cores
	}
	return w.Class.Cores
}

// tier orders replicas by how willingly selection uses them.
type tier uint8

const (
	tierUsable    tier = iota // healthy replica on a healthy worker
	tierDegraded              // overloaded or interfered
	tierUnhealthy             // replica or worker unhealthy: last resort
)

func (t tier) String() string {
	switch t {
	case tierUsable:
		return "usable"
	case tierDegraded:
		return "degraded"
	}
	return "unhealthy"
}

// tierOf classifies a replica by its flags and its worker's.
func tierOf(r *Replica, w *Worker) tier {
	switch {
	case !r.Healthy || !w.Healthy:
		return tierUnhealthy
	case r.Overloaded || r.Interfered:
		return tierDegraded
	}
	return tierUsable
}
