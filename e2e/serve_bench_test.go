package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"testing"
	"time"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/internal/zootest"
)

// BenchmarkServe measures a batch-1 query end to end on loopback — HTTP and
// gRPC, through selection, the worker's queue and ONNX Runtime — beside the
// same variant run in-process through ONNX Runtime, for the largest zoo CNN.
// Each sub-benchmark reports p50 in µs; compare "inprocess" with the others.
func BenchmarkServe(b *testing.B) {
	s := startServer(b, b.TempDir())
	s.registerZoo(b, "mnist-cnn-m")
	c := ctx(b)
	set := mnist(b)
	vs, err := s.c.Variants(c, "mnist-cnn-m")
	if err != nil {
		b.Fatal(err)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Profile.P99At(1) < vs[j].Profile.P99At(1) })
	v := vs[0]
	raw := rawFP32(set, 0, 1)
	jsonBody := func() []byte {
		var buf bytes.Buffer
		buf.WriteString(`{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":[`)
		for i, x := range set.Inputs[:784] {
			if i > 0 {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, "%g", x)
		}
		buf.WriteString(`]}]}`)
		return buf.Bytes()
	}()
	report := func(b *testing.B, lat []time.Duration) {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}

	b.Run("inprocess", func(b *testing.B) {
		model, err := os.ReadFile(zootest.Path(b, "models/mnist-cnn-m.onnx"))
		if err != nil {
			b.Fatal(err)
		}
		if err := executor.Init(); err != nil {
			b.Fatal(err)
		}
		sess, err := executor.Load(model, executor.Options{Threads: v.Threads, OptLevel: v.OptLevel})
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		in := make([]byte, len(raw))
		for i := range raw { // the torch models take 0–1 pixels
			in[i] = raw[i]
		}
		var out []inference.Tensor
		input := []inference.Tensor{{Shape: []int64{1, 1, 28, 28}, Data: in}}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if out, err = sess.Run(input, out); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
	b.Run("http", func(b *testing.B) {
		url := "http://" + s.addr + "/v2/models/" + v.Name + "/infer"
		hc := &http.Client{}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			resp, err := hc.Post(url, "application/json", bytes.NewReader(jsonBody))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("HTTP %d", resp.StatusCode)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
	b.Run("http-binary", func(b *testing.B) {
		// Triton's binary tensor extension, what its HTTP clients send by default.
		hdr := []byte(fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`, len(raw)))
		body := append(append([]byte{}, hdr...), raw...)
		url := "http://" + s.addr + "/v2/models/" + v.Name + "/infer"
		hc := &http.Client{}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("Inference-Header-Content-Length", fmt.Sprint(len(hdr)))
			t0 := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("HTTP %d", resp.StatusCode)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
	// The protocols' own floor on this machine: a request that does no work.
	b.Run("http-live", func(b *testing.B) {
		hc := &http.Client{}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			resp, err := hc.Get("http://" + s.addr + "/v2/health/live")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
	b.Run("grpc-live", func(b *testing.B) {
		gc := grpcClient(b, s)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := gc.ServerLive(c, &pb.ServerLiveRequest{}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
	b.Run("grpc", func(b *testing.B) {
		gc := grpcClient(b, s)
		req := &pb.ModelInferRequest{ModelName: v.Name, Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{raw}}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := gc.ModelInfer(c, req); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
	b.Run("grpc-parallel", func(b *testing.B) {
		gc := grpcClient(b, s)
		req := &pb.ModelInferRequest{ModelName: v.Name, Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 1, 28, 28}}}, RawInputContents: [][]byte{raw}}
		b.SetParallelism(8)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := gc.ModelInfer(c, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
}
