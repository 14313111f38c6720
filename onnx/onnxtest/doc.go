// Package onnxtest holds test helpers for code that handles ONNX models: find
// the repository root, load the real ONNX Runtime shared library once per
// test binary, run a model on CPU, and read the model zoo's IDX data files.
// Tests that need ONNX Runtime fail (never skip) when it is missing, telling
// the reader to run `make ort`.
package onnxtest
