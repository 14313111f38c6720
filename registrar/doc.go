// Package registrar turns an uploaded ONNX model into a registered
// architecture: it checks the upload, stores the file in the model
// repository, derives variants, has the profiler measure each one, drops
// dominated variants, and commits architecture, variants and use case to
// the metadata store in one step. A registration that fails or is
// interrupted — even by killing the process — leaves nothing behind: the
// pending record and any blobs only it referenced are removed, at once, or
// once its lease expires by whichever registrar sharing the store looks
// next. Several registrars (one per controller) may share a store and a
// blob repository: each holds its registrations under leases it renews,
// references every blob before writing it, and collects garbage under the
// store's blob lock, so none destroys another's work in flight.
package registrar
