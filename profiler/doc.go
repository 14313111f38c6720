// Package profiler measures what a variant costs: load time, latency p50 and
// p99 at each batch size on real inputs after warm-up, throughput, peak
// memory, and top-1 accuracy on validation data.
//
// Every ONNX Runtime call made on behalf of a registration runs in a child
// process (the infaas binary itself, re-executed): peak memory is then the
// child's own high-water mark, measurements do not share an address space
// with the server, and a model that crashes ONNX Runtime kills only the
// child. The Profiler runs one child at a time so measurements do not
// distort each other on a small machine.
package profiler
