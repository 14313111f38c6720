// Package selection owns the decision made on every query's arrival: which
// variant serves it, on which replica, and whether a variant must be loaded
// and where. It is policy only: Select is a pure function of a Snapshot, a
// Request and a time, with no I/O, no goroutines and no randomness, and it
// allocates nothing, so the controller and the simulator call the same code.
// Explain returns the same decision with the reasons for it.
//
// # Snapshot
//
// NewSnapshot indexes a Catalog (architectures, variants, hardware-class
// prices) and a State (workers, replicas) once: variants sorted by name,
// each architecture's and use case's variants pre-sorted by cost, p99
// profiles flattened, replicas grouped by variant with their queueing delay,
// and for every variant the worker a new replica would go to. WithState
// swaps in a new State without re-indexing the catalog. A request then costs
// one map lookup (its name) plus a scan of its candidates' replicas.
//
// # The infaas policy
//
// Words: a candidate is a variant the request names (the variant itself,
// the variants of an architecture, or of every architecture of a use case)
// whose max batch fits the batch and whose accuracy reaches the minimum.
// Accuracy is never traded away. The estimate for a candidate on a replica is
//
//	p99 at the batch (interpolated between profiled batch sizes)
//	+ queued samples ÷ throughput (observed, else the profile's at max batch)
//	+ what is left of the replica's load, if it is still loading
//
// and for a variant that is not loaded, load time + p99. A variant's cost
// per query is its hardware class's price for the cores it uses (the whole
// device for an accelerator) divided by its profiled throughput at max batch
// (Snapshot.VariantCostPer1k). Replicas fall in three tiers: usable,
// degraded (overloaded or interfered) and unhealthy (the replica or its
// worker); unhealthy replicas are used only when nothing else can serve.
//
// The rules are numbered as the steps of DESIGN §5 (1 and 2, candidates
// and estimates, are above):
//
//   - Refusals: the name is unknown, the batch exceeds every max batch
//     ("batch N exceeds the largest max batch M"), or no variant reaches
//     the accuracy.
//   - Rule 3, loaded first: among usable replicas whose estimate meets the
//     latency target and whose variant is within the cost ceiling, serve on
//     the one of the cheapest variant, then the lowest estimate.
//     Candidates are scanned in cost order, so the scan stops at the first
//     cost above the pick.
//   - Rule 4, load off the critical path: otherwise take the variants that
//     could meet the requirements when loaded (p99 ≤ target, cost ≤
//     ceiling), cheapest then fastest first, and walk them to the first
//     that has a usable or degraded replica or fits a worker. Variants
//     skipped because they fit no worker are reported in Decision.Unplaced
//     (a scale-out signal). If it already has replicas (busy, degraded or
//     loading), start no second load — replication is the model
//     autoscaler's job, and this keeps a burst of requests from loading a
//     different variant each — and serve on the closest replica. Else load
//     it on its worker: in the background (ServeAndLoad) when any candidate
//     replica can serve meanwhile, the closest one (usable before degraded,
//     then lowest estimate); as a cold start (LoadAndServe) when none can.
//   - Rule 5, best effort: when no candidate can meet the requirements, or
//     none that can is loaded or placeable, serve the closest usable or
//     degraded replica; else load the placeable candidate with the lowest
//     load + p99; else use the closest unhealthy replica; else refuse (no
//     capacity).
//   - Strict: Decision.Met says whether the estimate meets the target and
//     the cost the ceiling. A strict request that would not be met is
//     refused instead: ReasonUnsatisfiable when no candidate could meet it
//     even loaded, ReasonNotReady (or ReasonNoCapacity) when one could; a
//     rule-4 load is kept as a background load so that a retry finds it
//     loaded.
//
// Placement prefers the least utilised worker that can host the variant
// (same execution provider, enough cores for its threads, free memory at
// least its peak memory), then the one with most free memory: as in INFaaS,
// a load started here is on its way to serve latency-bound requests and
// should avoid interference; packing workers tight is the cluster
// autoscaler's business when it scales in.
//
// Every tie is broken by index (variant, replica and worker indexes follow
// name and ID order), so decisions are deterministic.
//
// # Performance
//
// On a 2-core AMD EPYC VM (go test -bench BenchmarkSelect -benchmem):
// fully model-less requests with mixed targets take about 0.4 µs at 1,000
// variants and 100 workers and at most 3.8 µs in any size measured; a
// request no loaded replica can serve, which scans every candidate of its
// use case, about 3.5 µs (BenchmarkSelectMiss). Select allocates nothing.
// A full NewSnapshot at that size takes about 2.5 ms, WithState about 0.3 ms,
// Explain about 0.5 ms.
//
// # Policies
//
// Lookup finds a policy by name in an explicit registry: "infaas" (the
// above) and "fixed" (one configured variant per architecture, the
// SageMaker- and Clipper-like baselines). An unknown name is an error.
package selection
