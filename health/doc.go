// Package health is the replica monitor: the windowed statistics of one
// replica's arrivals, refusals, batches and latencies (Monitor, Stats) and
// the rules that flag it overloaded or interfered against its profile
// (Assess, Thresholds). It is pure — no cgo, no I/O, no goroutines of its
// own, and the clock is injected — so the live worker and the simulator
// judge replicas with the same code.
package health
