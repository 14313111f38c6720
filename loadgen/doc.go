// Package loadgen sends an open-loop load to an infaas server and measures
// it: arrivals follow a rate schedule (Poisson or fixed-interval) and never
// wait for answers; each request carries one of a weighted mix of
// requirement sets; every outcome is classified (answered, refused, failed),
// answered requests are checked against their own latency target, and the
// figures are kept per second and for the whole run.
//
// The package owns the schedule shapes (schedule.go), the arrival process
// (arrivals.go), the requirement mix and synthetic inputs (mix.go,
// input.go), the two transports behind the Sender interface (http.go,
// grpc.go), the run itself (run.go, collect.go, histogram.go) and its
// reports: a table line per second, CSV, JSON and a PNG plot (report.go,
// plot.go). `infaas loadgen` is a thin command over Run.
package loadgen
