// Package executor runs ONNX models in ONNX Runtime. It finds and loads the
// ONNX Runtime shared library once per process, inspects models, writes
// graph-optimised copies of them, and runs sessions with a chosen number of
// intra-op threads and execution provider. Tensors cross the boundary as raw
// little-endian bytes so the serving path copies nothing it does not have to.
package executor
