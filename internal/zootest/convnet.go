package zootest

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/infaas/infaas/onnx"
)

// ConvNet returns an ONNX classifier for MNIST-shaped input whose cost is
// set by its size, for tests that need a model slow enough to saturate a
// worker (the zoo's models take microseconds): input [batch, 1, 28, 28]
// (batch fixed at one, or dynamic) → Conv 3×3 to channels → Relu → layers × (Conv
// 3×3 channels → channels → Relu) → GlobalAveragePool → Flatten → Gemm to
// 10 logits. Each channels→channels layer is 28·28·channels²·9
// multiply-adds. Its weights are random (seeded), so its accuracy is
// chance: register it with a declared accuracy.
func ConvNet(channels, layers int, dynamicBatch bool) []byte {
	r := rand.New(rand.NewPCG(uint64(channels), uint64(layers)))
	weights := func(name string, dims ...int64) *onnx.TensorProto {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		fanIn := float32(n / dims[0])
		w := make([]float32, n)
		for i := range w {
			w[i] = (r.Float32()*2 - 1) / fanIn
		}
		return onnx.NewFloatTensor(name, dims, w)
	}
	c := int64(channels)
	pads := onnx.IntsAttr("pads", 1, 1, 1, 1)
	kernel := onnx.IntsAttr("kernel_shape", 3, 3)
	batch := int64(1)
	if dynamicBatch {
		batch = -1
	}
	g := &onnx.GraphProto{Name: "convnet",
		Input:  []*onnx.ValueInfoProto{onnx.NewValueInfo("input", onnx.TensorProto_FLOAT, []int64{batch, 1, 28, 28})},
		Output: []*onnx.ValueInfoProto{onnx.NewValueInfo("logits", onnx.TensorProto_FLOAT, []int64{batch, 10})},
	}
	g.Initializer = append(g.Initializer, weights("w0", c, 1, 3, 3))
	g.Node = append(g.Node, onnx.NewNode("Conv", "conv0", []string{"input", "w0"}, []string{"c0"}, kernel, pads),
		onnx.NewNode("Relu", "relu0", []string{"c0"}, []string{"h0"}))
	prev := "h0"
	for i := 1; i <= layers; i++ {
		w, cv, h := "w"+itoa(i), "c"+itoa(i), "h"+itoa(i)
		g.Initializer = append(g.Initializer, weights(w, c, c, 3, 3))
		g.Node = append(g.Node, onnx.NewNode("Conv", "conv"+itoa(i), []string{prev, w}, []string{cv}, kernel, pads),
			onnx.NewNode("Relu", "relu"+itoa(i), []string{cv}, []string{h}))
		prev = h
	}
	g.Initializer = append(g.Initializer, weights("fc", 10, c), onnx.NewFloatTensor("fcb", []int64{10}, make([]float32, 10)))
	g.Node = append(g.Node, onnx.NewNode("GlobalAveragePool", "gap", []string{prev}, []string{"pooled"}),
		onnx.NewNode("Flatten", "flat", []string{"pooled"}, []string{"flat"}),
		onnx.NewNode("Gemm", "fc", []string{"flat", "fc", "fcb"}, []string{"logits"}, onnx.IntAttr("transB", 1)))
	m := &onnx.ModelProto{IrVersion: 8, ProducerName: "infaas-zootest", OpsetImport: []*onnx.OperatorSetIdProto{{Domain: "", Version: 13}}, Graph: g}
	b, err := onnx.Marshal(m)
	if err != nil {
		panic(err) // a bug in this builder
	}
	return b
}

// ConvNetFile writes ConvNet(channels, layers, dynamicBatch) into the
// test's temporary directory and returns its path.
func ConvNetFile(t testing.TB, channels, layers int, dynamicBatch bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "convnet.onnx")
	if err := os.WriteFile(p, ConvNet(channels, layers, dynamicBatch), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
