// Package worker is the runtime of one infaas worker: it loads replicas of
// model variants into ONNX Runtime under a memory ledger that never
// over-commits, serves each replica from its own bounded queue with dynamic
// batching limited by the requests' latency slack, refuses work it cannot
// finish in time (admission control), and monitors every replica's load and
// tail latency against its profile to flag it overloaded or interfered.
//
// The decisions are pure functions — batching.PlanBatch (when to run a
// batch), batching.Admit (whether to queue a request), both in the cgo-free
// package batching, and Assess (health flags) — so they can be tested, and
// reused by the simulator, without clocks or goroutines. The
// Worker is the mechanism around them: a constructor that starts nothing,
// Run(ctx) that owns every goroutine, and Load/Unload/Infer/State for the
// controller.
package worker
