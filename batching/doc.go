// Package batching owns a replica queue's two pure decisions: Admit (take a
// request or refuse it now) and PlanBatch (run a batch now or wait for
// more), and the cost model both read, built from a variant's profile by
// ProfileCost. They take a snapshot of the queue and a time, do no I/O and
// start no goroutines, and link nothing through cgo, so the worker and a
// simulator call the same functions.
package batching
