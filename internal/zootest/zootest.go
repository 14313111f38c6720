// Package zootest gives tests the repository's model zoo: paths, model
// bytes and the MNIST validation set. A missing zoo file fails the test —
// it never skips.
package zootest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/infaas/infaas/onnx/onnxtest"
	"github.com/infaas/infaas/validation"
)

// Path is the path of rel inside zoo/ (e.g. "models/mnist-8.onnx");
// the file must exist.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(onnxtest.RepoRoot(t), "zoo", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("zoo file missing: %v", err)
	}
	return p
}

// Model returns the bytes of zoo model name (without ".onnx").
func Model(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(t, "models/"+name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Validation loads a dataset's validation set ("mnist" or "fashion") in raw
// 0–255 pixels.
func Validation(t testing.TB, dataset string) *validation.Set {
	t.Helper()
	in, err := os.ReadFile(Path(t, "data/"+dataset+"/inputs.idx"))
	if err != nil {
		t.Fatal(err)
	}
	lb, err := os.ReadFile(Path(t, "data/"+dataset+"/labels.idx"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := validation.Load(in, lb)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
