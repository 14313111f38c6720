// Package loadgen sends an open-loop load to an infaas server and measures
// it: arrivals follow a rate schedule (Poisson or fixed-interval) or a
// recorded trace and never wait for answers; each request carries one of a
// weighted mix of requirement sets; every outcome is classified
// (answered, refused, failed), answered requests are checked against their
// own latency target, and the figures are kept per second and for the
// whole run.
//
// The package owns the schedule shapes (schedule.go: constant, steps, ramp,
// the INFaaS paper's flat, steady and fluctuating loads, per-second and
// per-minute CSV files; synthetic.go: a compressed day, Diurnal, and a
// seeded bursty load, Bursty), recorded traces of explicit arrivals
// (trace.go: a Trace is a Schedule of its per-second load and replays its
// exact times through TraceArrivals), the arrival process (arrivals.go),
// the requirement mix and synthetic inputs (mix.go, input.go), the two
// transports behind the Sender interface (http.go, grpc.go), the run itself
// (run.go, collect.go, histogram.go; it replays a Trace's arrivals as
// recorded) and its reports: a table line per second, CSV, JSON and a PNG
// plot (report.go, plot.go). `infaas loadgen` is a thin command over Run.
//
// Schedules, arrivals and traces are pure: the same spec and seed give the
// same sequence, with no clock and no goroutines, so a simulator can drive
// them as Run does; ParseSchedule reads the syntax of ScheduleHelp.
package loadgen
