package health

import (
	"math"
	"time"
)

// Slowness folds one batch's compute time into a replica's slowness: how
// many times slower than its profile it has run lately — the observed
// compute ÷ the profiled median at the batch, smoothed over about five
// batches (an exponentially weighted mean). It is an arithmetic mean on
// purpose: the worker multiplies the queue ahead of a request by it to
// predict when the request will run, and what drains a queue is the mean
// service time, preemptions included (a geometric mean, tried, reads a
// core shared with the server as barely slow and admits requests that then
// miss their deadline). It returns old unchanged when the median or the
// compute time is unknown; old ≤ 0 counts as 1. The worker scales its
// admission and batching costs by it and reports it; the dispatcher scales
// its estimates by it.
//
// A median under SlownessFloor counts as SlownessFloor: below it a batch's
// time is the scheduler's and the cache's, not the model's — a cold first
// run at a new batch shape took 100 times a 30 µs median and, folded in,
// made a replica refuse every 1 ms request for the next second — and no
// deadline decision rests on a difference that small (batching keeps as
// much back for a late timer).
func Slowness(old float64, compute time.Duration, medianMs float64) float64 {
	if medianMs <= 0 || compute <= 0 {
		return old
	}
	if old <= 0 {
		old = 1
	}
	ratio := float64(compute) / float64(max(time.Duration(medianMs*float64(time.Millisecond)), SlownessFloor))
	return 0.8*old + 0.2*ratio
}

// SlownessFloor is the least median Slowness compares a batch's compute
// time with.
const SlownessFloor = time.Millisecond

// SlownessHalfLife is how fast old evidence of slowness fades while a
// replica runs nothing: a replica judged slow refuses the tight requests
// that would show it is fast again, so without this a burst of slow runs
// (a cold start, a passing neighbour) would shut it out of tight traffic
// for good.
const SlownessHalfLife = time.Second

// DecayedSlowness is slowness s (as Slowness keeps it) after idle without
// a batch: its excess over 1 halves every SlownessHalfLife. The worker and
// the simulator read slowness only through it.
func DecayedSlowness(s float64, idle time.Duration) float64 {
	if s <= 1 || idle <= 0 {
		return max(s, 1)
	}
	return 1 + (s-1)*math.Exp2(-float64(idle)/float64(SlownessHalfLife))
}

// Demand is what a replica is asked for, in samples per second: the
// requests that arrived (admitted or refused) times the samples per
// request it served, at the larger of the last two seconds' rate and the
// monitor window's. So a rise shows at once, and a fall only once the
// whole window has seen it. The model autoscaler reads it as
// autoscale.Replica.Demand.
func Demand(s Stats) float64 {
	if s.Window <= 0 {
		return 0
	}
	per := 1.0
	if s.QPS > 0 && s.InferencesPerSecond > 0 {
		per = s.InferencesPerSecond / s.QPS
	}
	rate := float64(s.Arrivals+s.Refused) / s.Window.Seconds()
	if s.RecentWindow > 0 {
		rate = max(rate, float64(s.RecentArrivals)/s.RecentWindow.Seconds())
	}
	return rate * per
}

// Busy is the fraction of a worker's cores a replica keeps busy: the
// inferences it served per second over its profiled throughput on the
// worker's class, weighted by the cores its threads occupy. A worker's
// utilisation (autoscale.Worker.Utilization) is the sum over its
// replicas, at most 1.
func Busy(s Stats, throughputQPS float64, threads, cores int) float64 {
	if throughputQPS <= 0 {
		return 0
	}
	return s.InferencesPerSecond / throughputQPS * float64(max(threads, 1)) / float64(max(cores, 1))
}
