// Package controller is infaas's front end for queries: it keeps an
// in-memory snapshot of variants, workers and replicas, asks the selection
// policy for a decision per query, starts loads off the critical path, and
// forwards the query to the chosen worker.
package controller
