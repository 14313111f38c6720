// Package events owns the event log: a bounded, in-memory record of every
// action infaas took on its own — a model autoscaler replicating or
// switching a variant, the cluster autoscaler adding or draining a worker,
// the monitor marking a replica interfered — each with a stable reason word
// for metrics, a sentence for people, and the numbers behind the decision.
// The log is mechanism only: the autoscalers and the controller decide and
// append; the API serves it at GET /v1/events and the CLI prints it.
package events
