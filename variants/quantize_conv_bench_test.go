package variants

import (
	"fmt"
	"testing"

	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/onnx/onnxtest"
	ort "github.com/yalue/onnxruntime_go"
)

// BenchmarkQuantizedCNN compares ONNX Runtime CPU latency of the zoo's
// mnist-cnn-m (two 3×3 Convs, two Gemms) in float32 and after QuantizeDynamic
// (ConvInteger and MatMulInteger), one intra-op thread, at batch 1 and 8:
//
//	go test -bench Quantized -run '^$' ./variants/
//
// and the same for the 136-channel, four-Conv net of the autoscaling tests
// (zootest.ConvNet), where the Convs carry the cost.
func BenchmarkQuantizedCNN(b *testing.B) {
	onnxtest.InitORT(b)
	fp32 := readZooModel(b, "mnist-cnn-m.onnx")
	int8Model, rep, err := QuantizeDynamic(fp32)
	if err != nil {
		b.Fatal(err)
	}
	if rep.Conv != 2 || rep.Gemm != 2 {
		b.Fatalf("report %+v: want 2 Conv and 2 Gemm quantised", rep)
	}
	b.Run("mnist-cnn-m", func(b *testing.B) { benchPair(b, fp32, int8Model) })
	wide := zootest.ConvNet(136, 3, true)
	wideInt8, rep, err := QuantizeDynamic(wide)
	if err != nil {
		b.Fatal(err)
	}
	if rep.Conv != 4 {
		b.Fatalf("report %+v: want 4 Conv quantised", rep)
	}
	b.Run("convnet-136x4", func(b *testing.B) { benchPair(b, wide, wideInt8) })
}

func benchPair(b *testing.B, fp32, int8Model []byte) {
	for _, batch := range []int64{1, 8} {
		for _, variant := range []struct {
			name  string
			model []byte
		}{{"fp32", fp32}, {"int8", int8Model}} {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, variant.name), func(b *testing.B) {
				benchSession(b, variant.model, "input", ort.NewShape(batch, 1, 28, 28), batch)
			})
		}
	}
}
