// Package validation reads the labelled validation data a user registers
// with a model — inputs and labels as IDX files, the format MNIST made
// common — and turns it into batches of a model's input tensor.
package validation
