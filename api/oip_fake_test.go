package api

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/infaas/infaas/api/inferencepb"
	"github.com/infaas/infaas/controller"
)

// fakeBackend is a hand-written Backend for the protocol tests. It knows a
// few models; Infer echoes every input as an output named "<input>_out"
// (same datatype, shape and bytes), adds "sum", the FP64 sum of all FP32
// input elements, and reports fixed parameters. It records the last
// request. err, when set, is what Infer returns; respond, when set,
// replaces the echo.
type fakeBackend struct {
	mu       sync.Mutex
	last     *InferRequest
	notReady bool
	err      error
	respond  func(*InferRequest) *InferResponse
}

var _ Backend = (*fakeBackend)(nil)

// fakeModels are the names fakeBackend knows, with their readiness.
var fakeModels = map[string]bool{
	"resnet50":                      true,
	"image_classification.imagenet": true,
	"image_classification/imagenet": true,
	"warming":                       false,
}

// fakeParameters are the response parameters fakeBackend reports.
var fakeParameters = map[string]any{
	"variant":  "resnet50-onnx-b8",
	"queue_ms": 1.5,
	"met":      true,
	"batch":    8,
	"requests": uint64(1) << 63,
}

func (f *fakeBackend) known(name string) error {
	if _, ok := fakeModels[name]; !ok {
		return fmt.Errorf("model %q: %w", name, controller.ErrUnknownModel)
	}
	return nil
}

func (f *fakeBackend) Infer(ctx context.Context, req *InferRequest) (*InferResponse, error) {
	f.mu.Lock()
	f.last = req
	err, respond := f.err, f.respond
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := f.known(req.Model); err != nil {
		return nil, err
	}
	if respond != nil {
		return respond(req), nil
	}
	resp := &InferResponse{Version: "1", Parameters: fakeParameters}
	sum := 0.0
	for _, in := range req.Inputs {
		resp.Outputs = append(resp.Outputs, Tensor{Name: in.Name + "_out", Datatype: in.Datatype, Shape: in.Shape, Data: in.Data})
		if in.Datatype == "FP32" {
			for i := 0; i+4 <= len(in.Data); i += 4 {
				sum += float64(math.Float32frombits(binary.LittleEndian.Uint32(in.Data[i:])))
			}
		}
	}
	resp.Outputs = append(resp.Outputs, Tensor{Name: "sum", Datatype: "FP64", Shape: []int64{1},
		Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(sum))})
	return resp, nil
}

func (f *fakeBackend) ModelMetadata(ctx context.Context, name string) (ModelMetadata, error) {
	if err := f.known(name); err != nil {
		return ModelMetadata{}, err
	}
	return ModelMetadata{
		Name:     name,
		Versions: []string{"1", "2"},
		Platform: "onnxruntime_onnx",
		Inputs:   []TensorMetadata{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 3, 224, 224}}},
		Outputs:  []TensorMetadata{{Name: "probs", Datatype: "FP32", Shape: []int64{-1, 1000}}},
	}, nil
}

func (f *fakeBackend) ModelReady(ctx context.Context, name string) (bool, error) {
	if err := f.known(name); err != nil {
		return false, err
	}
	return fakeModels[name], nil
}

func (f *fakeBackend) Ready(ctx context.Context) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.notReady
}

func (f *fakeBackend) lastRequest() *InferRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// noLeaks checks, after the test's other cleanups have stopped its servers,
// that no goroutine it started is left.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// startHTTP serves RegisterInference and ServerReadyHandler over fb on a
// loopback port.
func startHTTP(t *testing.T, fb *fakeBackend, maxBody int64) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	RegisterInference(mux, fb, maxBody)
	mux.Handle("GET /v2/health/ready", ServerReadyHandler(fb))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// startGRPC serves an InferenceServer over fb on a loopback port and returns
// a connection to it.
func startGRPC(t *testing.T, fb *fakeBackend) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterGRPCInferenceServiceServer(srv, NewInferenceServer(fb))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("grpc Serve: %v", err)
		}
	})
	return conn
}

func tensor(name, datatype string, shape []int64, data []byte) Tensor {
	return Tensor{Name: name, Datatype: datatype, Shape: shape, Data: data}
}

// Raw little-endian layouts, for building inputs and checking outputs.

func rawFP32(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func rawFP64(vs ...float64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

func rawINT64(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func rawBYTES(vs ...string) []byte {
	var b []byte
	for _, v := range vs {
		b = appendBytesElement(b, []byte(v))
	}
	return b
}
