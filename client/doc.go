// Package client is a Go client for infaas's management API, used by the
// CLI, the demo and the end-to-end tests.
package client
