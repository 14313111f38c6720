// Package catalog holds the nouns of infaas — use cases, architectures,
// variants and their profiles — as plain values. It owns no storage and no
// behaviour beyond naming rules and small derived quantities; the metadata
// store persists these values, the registrar creates them, and the selection
// policy reads them.
package catalog
