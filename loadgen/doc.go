// Package loadgen sends an open-loop load to an infaas server and measures
// it: arrivals follow a rate schedule (Poisson or fixed-interval) or a
// recorded trace and never wait for answers; each request carries one of a
// weighted mix of requirement sets; every outcome is classified
// (answered, refused, failed), answered requests are checked against their
// own latency target, and the figures are kept per second and for the
// whole run.
//
// The load itself — schedules, arrivals, traces, mixes, the latency
// histogram — is package workload's (re-exported here under the same
// names, workload.go), so that the simulator replays the same loads
// without linking the senders' clients. This package owns the synthetic
// inputs (input.go), the two transports behind the Sender interface
// (http.go, grpc.go), the run itself (run.go, collect.go; it replays a
// Trace's arrivals as recorded) and its reports: a table line per second,
// CSV, JSON and a PNG plot (report.go, plot.go). `infaas loadgen` is a
// thin command over Run.
package loadgen
