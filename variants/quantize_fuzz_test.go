package variants

import (
	"testing"

	"github.com/infaas/infaas/onnx"
)

// FuzzQuantizeDynamic: the int8 rewrite meets user bytes in the server
// process; on any input it returns a model that parses or an error, never
// panics. Seeded with zoo models (MLP, CNN, and mnist-8's IR 3 graph) and a
// Conv/Gemm/MatMul graph whose weights are Constant nodes (go test runs the
// seeds; make fuzz explores).
func FuzzQuantizeDynamic(f *testing.F) {
	seed := readZooModel(f, "mnist-mlp-s.onnx")
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Add(readZooModel(f, "mnist-cnn-s.onnx"))
	f.Add(readZooModel(f, "mnist-8.onnx"))
	f.Add(marshalModel(f, constantWeightsModel(1)))
	f.Add(marshalModel(f, groupedConvModel(2)))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _, err := QuantizeDynamic(b)
		if err != nil {
			return
		}
		if _, err := onnx.Parse(out); err != nil {
			t.Fatalf("the quantised model does not parse: %v", err)
		}
	})
}
