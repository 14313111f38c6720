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
// prices) and a State (workers, replicas) once. What selection weighs is an
// instance: a variant on one hardware class, with the profile measured on
// that class (p99 per batch, throughput, load time, peak memory) and that
// class's cost. A variant has an instance for its reference class
// (Variant.Hardware, Variant.Profile) and one for every other class it was
// profiled on (Variant.Profiles) that Catalog.Classes lists. Instances are
// sorted by variant name, then class (the reference first); a variant's,
// an architecture's and a use case's instances are pre-sorted by cost; p99
// profiles are flattened; replicas are grouped by instance — the variant on
// its worker's class, or the reference instance where the variant has no
// profile for that class — with their queueing delay; and for every
// instance the snapshot records the worker of its class a new replica
// would go to. WithState swaps in a new State without re-indexing the
// catalog. A request then costs one map lookup (its name) plus a scan of
// its candidates' replicas.
//
// # The infaas policy
//
// Words: a candidate is an instance the request names (the instances of
// the variant itself, of the variants of an architecture, or of every
// architecture of a use case) whose max batch fits the batch and whose
// accuracy reaches the minimum. Accuracy is never traded away. The same
// variant on a faster class is another candidate, dearer or cheaper. The
// estimate for a candidate on a replica is
//
//	p99 at the batch (interpolated between profiled batch sizes)
//	+ queued samples ÷ throughput (observed, else the profile's at max batch)
//	+ what is left of the replica's load, if it is still loading
//
// all from the instance's class profile, and for an instance that is not
// loaded, load time + p99. An instance's cost per query is its hardware
// class's price for the cores it uses (the whole device for an
// accelerator) divided by its throughput at max batch profiled on that
// class (Snapshot.VariantCostPer1k). Replicas fall in three tiers: usable,
// degraded (overloaded or interfered) and unhealthy (the replica or its
// worker); unhealthy replicas are used only when nothing else can serve.
//
// The rules are numbered as the steps of DESIGN §5 (1 and 2, candidates
// and estimates, are above); in them, a variant is an instance, so "has
// replicas" means replicas of the variant on that class:
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
// Placement prefers the least utilised worker that can host the instance
// (same execution provider, the instance's hardware class — a profile says
// nothing about another class —, enough cores for a CPU variant's threads,
// free memory at least its peak memory on that class), then the one with
// most free memory: as in INFaaS,
// a load started here is on its way to serve latency-bound requests and
// should avoid interference; packing workers tight is the cluster
// autoscaler's business when it scales in.
//
// Every tie is broken by index (instance, replica and worker indexes follow
// name, class and ID order), so decisions are deterministic.
//
// # Performance
//
// On a 2-core VM (Oxide virtual Turin-like CPU; go test -bench . -benchmem),
// in generated worlds where a variant is profiled on 1.8 hardware classes
// on average (1,000 variants make 1,783 instances, 434 in the largest use
// case): fully model-less requests with mixed targets take about 0.3 µs at
// 1,000 variants and 100 workers and at most 5.3 µs in any size measured; a
// request no loaded replica can serve, which scans every candidate instance
// of its use case, about 5.3 µs (BenchmarkSelectMiss). The cost is linear
// in the instances scanned: with one class per variant the same sizes take
// 0.3 µs, 2.3 µs and 3.0 µs. Select allocates nothing. A full NewSnapshot
// at that size takes about 4.7 ms, WithState about 0.34 ms, Explain about
// 1.8 ms.
//
// # Policies
//
// Lookup finds a policy by name in an explicit registry: "infaas" (the
// above) and "fixed" (one configured variant per architecture, the
// SageMaker- and Clipper-like baselines). An unknown name is an error.
package selection
