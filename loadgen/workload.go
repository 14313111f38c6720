package loadgen

import (
	"time"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/workload"
)

// The load itself — schedules, arrivals, traces, requirement mixes and
// the latency histogram — lives in package workload, which links nothing
// but the standard library, so that the simulator replays the very same
// loads without the senders' clients. These names keep loadgen's API.
type (
	Schedule       = workload.Schedule
	Step           = workload.Step
	Steps          = workload.Steps
	Point          = workload.Point
	Linear         = workload.Linear
	Diurnal        = workload.Diurnal
	Trace          = workload.Trace
	TraceArrival   = workload.TraceArrival
	TraceArrivals  = workload.TraceArrivals
	Arrivals       = workload.Arrivals
	ArrivalKind    = workload.ArrivalKind
	Histogram      = workload.Histogram
	Mix            = workload.Mix
	RequirementSet = workload.RequirementSet
)

// Arrival kinds and the schedule syntax.
const (
	Poisson      = workload.Poisson
	Fixed        = workload.Fixed
	Replayed     = workload.Replayed
	ScheduleHelp = workload.ScheduleHelp
)

// Re-exported constructors and readers.
var (
	ParseSchedule         = workload.ParseSchedule
	ParseArrivalKind      = workload.ParseArrivalKind
	ScheduleKinds         = workload.ScheduleKinds
	NewArrivals           = workload.NewArrivals
	NewTraceArrivals      = workload.NewTraceArrivals
	ReadTrace             = workload.ReadTrace
	ParseTrace            = workload.ParseTrace
	ReadCSVSchedule       = workload.ReadCSVSchedule
	ReadCSVMinuteSchedule = workload.ReadCSVMinuteSchedule
	Bursty                = workload.Bursty
	MeanRate              = workload.MeanRate
	ReadMix               = workload.ReadMix
)

// params are the request parameters that state set's requirements.
func params(set RequirementSet) map[string]any {
	return client.Requirements{
		Latency: set.Target(), MinAccuracy: set.MinAccuracy, MaxCost: set.MaxCost, Strict: set.Strict,
	}.Params()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
