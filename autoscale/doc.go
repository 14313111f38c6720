// Package autoscale holds infaas's two scaling policies as pure code: the
// model autoscaler (Models), which adds and removes replicas and switches
// architectures between variants as their demand changes, and the cluster
// autoscaler (Cluster), which adds and removes workers. Each is a Step
// function of a state snapshot and a clock that returns actions, each with
// a reason and the numbers behind it; neither does I/O or starts a
// goroutine. The controller builds the snapshot from its workers' reports
// and carries the actions out; the simulator drives the same code on a
// virtual clock.
//
// # The model autoscaler, per architecture
//
// Demand is what a variant's replicas are asked to do, in samples per
// second (admitted and refused requests × their samples). Capacity is what
// its replicas sustain: replicas × the profiled throughput at the largest
// batch whose p99 takes at most Config.LatencyShare of the tightest latency
// target among the requests it served (an interfered replica counts for
// nothing; a loading one counts in full, it is on its way).
//
//	idle ──demand > ScaleUpAt × capacity for UpWindow──▶ scale up ──▶ cool-down
//	  ▲                                                                   │
//	  └────────────────────────────(Cooldown)─────────────────────────────┘
//	idle ──demand < ScaleDownAt × capacity without one replica, for DownWindow──▶ remove one
//	idle ──one replica, and a cheaper variant alone keeps demand < ScaleDownAt × its capacity,
//	       for DownWindow──▶ downgrade (load the cheaper variant, then unload this one)
//	idle ──no traffic for the architecture for IdleUnload──▶ unload its last replicas
//
// Scaling up weighs every way to reach the capacity the demand needs (see
// Option): more replicas of the same variant on its class or on another
// class it was profiled on (horizontal), or a switch to another variant of
// the architecture that meets the accuracy floor and latency target of the
// traffic (vertical). Each option is priced in USD per hour once it is in
// place; the cheapest that fits the workers' free memory and cores now is
// taken, and a tie keeps the variant in use. When nothing fits, the class
// of the cheapest option is reported short (Result.Shortages), which is
// what the cluster autoscaler adds workers for. A switch loads the new
// variant first and unloads the old one only once the new replicas are
// ready; an architecture with traffic is never left without a replica.
//
// # The cluster autoscaler
//
// A class is short when the model autoscaler could not place what it
// needed there, when selection could not place a load there
// (selection.Decision.Unplaced), or when every worker of the class has been
// busier than UtilThreshold — each for OutWindow. Then one worker of that
// class is added (never above MaxWorkers, at most one start in flight per
// class). A worker the provider started that has served nothing for
// IdleCooldown is drained (its replicas unloaded, nothing new placed on
// it) and then removed, never below MinWorkers.
package autoscale
