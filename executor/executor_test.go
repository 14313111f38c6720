package executor

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func zooModel(t *testing.T, name string) []byte {
	t.Helper()
	wd, _ := os.Getwd()
	b, err := os.ReadFile(filepath.Join(wd, "..", "zoo", "models", name))
	if err != nil {
		t.Fatalf("zoo model: %v", err)
	}
	return b
}

func TestMain(m *testing.M) {
	if err := Init(); err != nil {
		panic("ONNX Runtime: " + err.Error())
	}
	os.Exit(m.Run())
}

func TestInspectAndRun(t *testing.T) {
	model := zooModel(t, "mnist-mlp-s.onnx")
	io, err := Inspect(model)
	if err != nil {
		t.Fatal(err)
	}
	if io.Input.DataType != "FP32" || len(io.Input.Shape) != 4 || io.Input.Shape[0] != -1 || io.Output.Shape[1] != 10 {
		t.Fatalf("io: %+v", io)
	}
	for _, opt := range []Options{{Threads: 1, OptLevel: OptBasic}, {Threads: 2, OptLevel: OptAll}} {
		s, err := Load(model, opt)
		if err != nil {
			t.Fatal(err)
		}
		in := make([]byte, 3*784*4)
		for i := 0; i < 3*784; i++ {
			binary.LittleEndian.PutUint32(in[4*i:], math.Float32bits(float32(i%255)/255))
		}
		out, shape, err := s.Run(in, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(shape) != 2 || shape[0] != 3 || shape[1] != 10 || len(out) != 3*10*4 {
			t.Fatalf("output shape %v, %d bytes", shape, len(out))
		}
		if _, _, err := s.Run(in[:100], 3, nil); err == nil {
			t.Fatal("short input accepted")
		}
		s.Close()
	}
}

func TestOptimizeWritesGraph(t *testing.T) {
	out, err := Optimize(zooModel(t, "mnist-cnn-s.onnx"), OptAll)
	if err != nil || len(out) == 0 {
		t.Fatalf("%d bytes, %v", len(out), err)
	}
	if _, err := Inspect(out); err != nil {
		t.Fatalf("optimised graph does not load: %v", err)
	}
}

func TestBadModelAndProvider(t *testing.T) {
	if _, err := Inspect([]byte("not a model")); !errors.Is(err, ErrBadModel) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := Load(zooModel(t, "mnist-mlp-s.onnx"), Options{OptLevel: "extreme"}); err == nil {
		t.Fatal("unknown optimisation level accepted")
	}
	// This library (onnxruntime-node's) has no CUDA provider: it must say so, not crash.
	if err := ProviderAvailable(ProviderCUDA); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("cuda on a CPU-only build: %v, want ErrProviderUnavailable", err)
	}
	if err := ProviderAvailable(ProviderCPU); err != nil {
		t.Fatal(err)
	}
}

func TestFindLibraryHonoursEnv(t *testing.T) {
	t.Setenv(LibraryEnv, "/no/such/libonnxruntime.so.1")
	if _, err := FindLibrary(); !errors.Is(err, ErrNoLibrary) {
		t.Fatalf("%v, want ErrNoLibrary", err)
	}
}
