// Package storetest is the conformance suite every metadata.Store must pass:
// each method's results and error paths, all-or-nothing writes, races
// between writers, and (when the implementation can reopen its data)
// survival of a restart. An implementation's test calls Run with a factory
// of empty stores.
package storetest
