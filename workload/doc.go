// Package workload describes a load: rate schedules (constant, steps,
// ramp, the INFaaS paper's flat, steady and fluctuating loads, a
// compressed day, a seeded bursty load, per-second and per-minute CSV
// counts; schedule.go, synthetic.go), recorded traces of explicit arrivals
// with optional per-arrival targets (trace.go), the arrival process that
// places queries on a schedule (arrivals.go), weighted requirement mixes
// (mix.go) and the latency histogram reports use (histogram.go).
//
// Everything here is pure — the same spec and seed give the same sequence,
// with no clock and no goroutines — and links nothing but the standard
// library, so `infaas loadgen` (package loadgen) sends it to a live server
// and `infaas simulate` (package sim) replays it on a virtual clock.
// ParseSchedule reads the syntax of ScheduleHelp.
package workload
