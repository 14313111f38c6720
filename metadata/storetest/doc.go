// Package storetest is the conformance suite every metadata.Store must pass:
// each method's results and error paths, all-or-nothing writes, races
// between writers, leases and their expiry, the blob lock, per-class
// profiles, change notification, (with WithSecondClient) two handles on one
// store as two processes would hold them, and (with WithReopen) survival of
// a restart. An implementation's test calls Run with a factory of empty
// stores.
package storetest
