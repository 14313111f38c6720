package registrar

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/infaas/infaas/onnx"
	"github.com/infaas/infaas/variants"
)

// TestContain: a panic in a step becomes ErrRejected naming the step.
func TestContain(t *testing.T) {
	r := &Registrar{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := r.contain("int8 quantisation", func() error {
		var s []int
		_ = s[3] // index out of range
		return nil
	})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "int8 quantisation failed on this model") {
		t.Fatalf("contained panic: %v", err)
	}
	want := errors.New("plain")
	if err := r.contain("x", func() error { return want }); err != want {
		t.Fatalf("an ordinary error must pass through: %v", err)
	}
}

// TestQuantiserOnLyingWeights: a MatMul weight whose dims promise far more
// data than it holds is refused or contained, never a crash.
func TestQuantiserOnLyingWeights(t *testing.T) {
	w := onnx.NewFloatTensor("w", []int64{4, 3}, make([]float32, 12))
	w.Dims = []int64{1 << 40, 1 << 20} // dims that disagree with the data
	g := &onnx.GraphProto{Name: "g",
		Input:       []*onnx.ValueInfoProto{onnx.NewValueInfo("x", onnx.TensorProto_FLOAT, []int64{1, 4})},
		Output:      []*onnx.ValueInfoProto{onnx.NewValueInfo("y", onnx.TensorProto_FLOAT, []int64{1, 3})},
		Initializer: []*onnx.TensorProto{w},
		Node:        []*onnx.NodeProto{onnx.NewNode("MatMul", "mm", []string{"x", "w"}, []string{"y"})},
	}
	b, err := onnx.Marshal(&onnx.ModelProto{IrVersion: 8, OpsetImport: []*onnx.OperatorSetIdProto{{Domain: "", Version: 13}}, Graph: g})
	if err != nil {
		t.Fatal(err)
	}
	r := &Registrar{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err = r.contain("int8 quantisation", func() error { _, _, err := variants.QuantizeDynamic(b); return err })
	if err == nil {
		t.Fatal("a weight with lying dims was quantised")
	}
	t.Log(err)
}
