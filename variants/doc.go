// Package variants derives the runnable variants of an architecture: graph
// rewrites of its ONNX file (ONNX Runtime optimisation levels, int8 dynamic
// quantisation) crossed with runtime settings (intra-op threads, maximum
// batch size, execution provider). It also drops variants that another
// variant dominates, saying which one and why. Everything here is pure:
// the registrar does the I/O and the profiler the measuring.
package variants
