// Package e2e holds end-to-end tests: they build the infaas binary, start
// real servers as separate processes on free loopback ports, and drive them
// over the network with real zoo models — including killing a server in
// the middle of a registration.
package e2e
