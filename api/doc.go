// Package api is infaas's HTTP front end: the management API under /v1
// (register models, list use cases, architectures, variants and
// registrations) and, beside it, the Open Inference Protocol. It owns the
// one mapping from domain errors to HTTP status codes.
package api
