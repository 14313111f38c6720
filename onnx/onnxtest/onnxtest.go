package onnxtest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// LibEnv names the environment variable that overrides where the ONNX Runtime
// shared library is.
const LibEnv = "INFAAS_ORT_LIB"

var (
	ortOnce sync.Once
	ortErr  error
)

// RepoRoot walks up from the test's working directory to the directory that
// holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// LibPath returns where the ONNX Runtime shared library should be: $LibEnv if
// set, else .cache/onnxruntime/libonnxruntime.so.1 under the repository root.
func LibPath(t testing.TB) string {
	t.Helper()
	if lib := os.Getenv(LibEnv); lib != "" {
		return lib
	}
	return filepath.Join(RepoRoot(t), ".cache", "onnxruntime", "libonnxruntime.so.1")
}

// InitORT initialises the ONNX Runtime environment once per test binary and
// fails the test when the library is missing or does not load.
func InitORT(t testing.TB) {
	t.Helper()
	lib := LibPath(t)
	ortOnce.Do(func() {
		if _, err := os.Stat(lib); err != nil {
			ortErr = fmt.Errorf("ONNX Runtime shared library not found (%v): run `make ort`, or set %s", err, LibEnv)
			return
		}
		if ort.IsInitialized() {
			return
		}
		ort.SetSharedLibraryPath(lib)
		if err := ort.InitializeEnvironment(); err != nil {
			ortErr = fmt.Errorf("initialise ONNX Runtime from %s: %w", lib, err)
		}
	})
	if ortErr != nil {
		t.Fatal(ortErr)
	}
}

// RunFloat runs a model with one float32 input on CPU and returns each named
// float32 output. optimize=false disables ONNX Runtime's graph optimisations,
// so the model's operators run as written instead of fused.
func RunFloat(t testing.TB, model []byte, optimize bool, input string, shape []int64, data []float32, outputs ...string) [][]float32 {
	t.Helper()
	InitORT(t)
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatalf("session options: %v", err)
	}
	defer opts.Destroy()
	if !optimize {
		if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
			t.Fatalf("disable graph optimisations: %v", err)
		}
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{input}, outputs, opts)
	if err != nil {
		t.Fatalf("ONNX Runtime refused the model: %v", err)
	}
	defer sess.Destroy()
	in, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		t.Fatalf("input tensor: %v", err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(outputs))
	if err := sess.Run([]ort.Value{in}, outs); err != nil {
		t.Fatalf("ONNX Runtime run: %v", err)
	}
	res := make([][]float32, len(outs))
	for i, v := range outs {
		ft, ok := v.(*ort.Tensor[float32])
		if !ok {
			t.Fatalf("output %s is %T, want a float32 tensor", outputs[i], v)
		}
		res[i] = append([]float32(nil), ft.GetData()...)
		if err := v.Destroy(); err != nil {
			t.Fatalf("free output %s: %v", outputs[i], err)
		}
	}
	return res
}

// ReadIDX reads an IDX file of unsigned bytes (big-endian magic 0x0000080N
// for N dims, then N big-endian uint32 sizes, then the data).
func ReadIDX(t testing.TB, path string) (dims []int, data []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read IDX file: %v", err)
	}
	if len(b) < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0x08 {
		t.Fatalf("%s: not an unsigned-byte IDX file", path)
	}
	rank := int(b[3])
	if len(b) < 4+4*rank {
		t.Fatalf("%s: truncated header", path)
	}
	dims = make([]int, rank)
	n := 1
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(b[4+4*i:]))
		n *= dims[i]
	}
	data = b[4+4*rank:]
	if len(data) != n {
		t.Fatalf("%s: %d data bytes, want %d for dims %v", path, len(data), n, dims)
	}
	return dims, data
}
