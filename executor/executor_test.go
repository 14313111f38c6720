package executor

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/inference"
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
	if len(io.Inputs) != 1 || len(io.Outputs) != 1 || !io.Batched ||
		io.Inputs[0].DataType != "FP32" || len(io.Inputs[0].Shape) != 4 || io.Inputs[0].Shape[0] != -1 || io.Outputs[0].Shape[1] != 10 {
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
		outs, err := s.Run([]inference.Tensor{{Shape: []int64{3, 1, 28, 28}, Data: in}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != 1 || !slices.Equal(outs[0].Shape, []int64{3, 10}) || len(outs[0].Data) != 3*10*4 || outs[0].Datatype != "FP32" {
			t.Fatalf("outputs %+v", outs)
		}
		if _, err := s.Run([]inference.Tensor{{Shape: []int64{3, 1, 28, 28}, Data: in[:100]}}, nil); err == nil {
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

// TestContractZoo reads the contract of every model of the contract zoo —
// several inputs and outputs, INT64 tensors, dynamic dimensions, a scalar,
// no batch dimension — and runs each at a shape its contract allows.
func TestContractZoo(t *testing.T) {
	for _, tc := range []struct {
		model   string
		batched bool
		inputs  []string // "name TYPE shape", as Describe writes them
		outputs []string
		run     [][]int64 // input shapes to run with
		want    [][]int64 // output shapes expected
	}{
		{"tabular-two-inputs", true,
			[]string{`"features" FP32 [batch, 16]`, `"category" INT64 [batch]`},
			[]string{`"scores" FP32 [batch, 4]`},
			[][]int64{{3, 16}, {3}}, [][]int64{{3, 4}}},
		{"digits-three-outputs", true,
			[]string{`"image" FP32 [batch, 1, 28, 28]`},
			[]string{`"logits" FP32 [batch, 10]`, `"embedding" FP32 [batch, 32]`, `"label" INT64 [batch]`},
			[][]int64{{2, 1, 28, 28}}, [][]int64{{2, 10}, {2, 32}, {2}}},
		{"segment-dynamic-hw", true,
			[]string{`"image" FP32 [batch, 3, height, width]`},
			[]string{`"mask" FP32 [batch, 1, height, width]`},
			[][]int64{{2, 3, 7, 9}}, [][]int64{{2, 1, 7, 9}}},
		{"vad-recurrent", false,
			[]string{`"input" FP32 [batch, 64]`, `"state" FP32 [2, batch, 32]`, `"sr" INT64 []`},
			[]string{`"output" FP32 [batch, 1]`, `"stateN" FP32 [2, batch, 32]`},
			[][]int64{{1, 64}, {2, 1, 32}, {}}, [][]int64{{1, 1}, {2, 1, 32}}},
		{"text-attention", true,
			[]string{`"input_ids" INT64 [batch, sequence]`, `"attention_mask" INT64 [batch, sequence]`},
			[]string{`"logits" FP32 [batch, 2]`},
			[][]int64{{2, 5}, {2, 5}}, [][]int64{{2, 2}}},
		{"image-no-batch", false,
			[]string{`"image" FP32 [3, height, width]`},
			[]string{`"heatmap" FP32 [height, width]`},
			[][]int64{{3, 4, 6}}, [][]int64{{4, 6}}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			model := zooModel(t, tc.model+".onnx")
			io, err := Inspect(model)
			if err != nil {
				t.Fatal(err)
			}
			describe := func(ts []catalog.TensorSpec) []string {
				var out []string
				for _, x := range ts {
					out = append(out, io.Describe(x))
				}
				return out
			}
			if io.Batched != tc.batched || !slices.Equal(describe(io.Inputs), tc.inputs) || !slices.Equal(describe(io.Outputs), tc.outputs) {
				t.Fatalf("contract: batched %v, inputs %q, outputs %q; want %v, %q, %q",
					io.Batched, describe(io.Inputs), describe(io.Outputs), tc.batched, tc.inputs, tc.outputs)
			}
			s, err := Load(model, Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var in []inference.Tensor
			for i, shape := range tc.run {
				n := int(catalog.Elements(shape)) * ElementSize(io.Inputs[i].DataType)
				data := make([]byte, n)
				if io.Inputs[i].DataType == "INT64" {
					for k := 0; k < n; k += 8 {
						data[k] = 1 // a valid index, mask and sample rate alike
					}
				}
				in = append(in, inference.Tensor{Shape: shape, Data: data})
			}
			// Twice: the second run reuses the first's output buffers.
			var outs []inference.Tensor
			for range 2 {
				if outs, err = s.Run(in, outs); err != nil {
					t.Fatal(err)
				}
			}
			for j, o := range outs {
				if o.Name != io.Outputs[j].Name || o.Datatype != io.Outputs[j].DataType || !slices.Equal(o.Shape, tc.want[j]) ||
					int64(len(o.Data)) != catalog.Elements(o.Shape)*int64(ElementSize(o.Datatype)) {
					t.Errorf("output %d: %s %s %v (%d bytes), want shape %v", j, o.Name, o.Datatype, o.Shape, len(o.Data), tc.want[j])
				}
			}
		})
	}
}
