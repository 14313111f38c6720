package variants

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/infaas/infaas/onnx/onnxtest"
)

// FuzzQuantizeDynamic: the int8 rewrite meets user bytes in the server
// process; on any input it returns a model or an error, never panics.
// Seeded with a zoo model (go test runs the seeds; make fuzz explores).
func FuzzQuantizeDynamic(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join(onnxtest.RepoRoot(f), "zoo", "models", "mnist-mlp-s.onnx"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = QuantizeDynamic(b)
	})
}
