package variants

import (
	"fmt"
	"testing"

	"github.com/infaas/infaas/onnx/onnxtest"
	ort "github.com/yalue/onnxruntime_go"
)

// BenchmarkQuantizeDynamic measures the rewrite itself on a 784-1024-512-10
// MLP (the shape of the zoo's mnist-mlp-l, 5.3 MB of float32 weights).
func BenchmarkQuantizeDynamic(b *testing.B) {
	model := marshalModel(b, mlpDeep(7))
	b.SetBytes(int64(len(model)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := QuantizeDynamic(model); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMLPInference compares ONNX Runtime CPU latency of the same MLP in
// float32 and after QuantizeDynamic, single-threaded, at two batch sizes.
func BenchmarkMLPInference(b *testing.B) {
	fp32 := marshalModel(b, mlpDeep(7))
	int8Model, _, err := QuantizeDynamic(fp32)
	if err != nil {
		b.Fatal(err)
	}
	onnxtest.InitORT(b)
	for _, variant := range []struct {
		name  string
		model []byte
	}{{"fp32", fp32}, {"int8", int8Model}} {
		for _, batch := range []int64{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", variant.name, batch), func(b *testing.B) {
				benchSession(b, variant.model, "x", ort.NewShape(batch, 784), batch)
			})
		}
	}
}

// benchSession times ONNX Runtime runs of model, one intra-op and one
// inter-op thread, on a random input of shape (input name in, output
// "logits" [batch, 10]), and reports µs per sample.
func benchSession(b *testing.B, model []byte, in string, shape ort.Shape, batch int64) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{in}, []string{"logits"}, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Destroy()
	x, err := ort.NewTensor(shape, randInput(1, int(shape.FlattenedSize())))
	if err != nil {
		b.Fatal(err)
	}
	defer x.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(batch, 10))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Destroy()
	for b.Loop() {
		if err := sess.Run([]ort.Value{x}, []ort.Value{out}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch)/1000, "µs/image")
}
