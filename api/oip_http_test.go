package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infaas/infaas/controller"
)

// httpResponse is an $inference_response as a client reads it.
type httpResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id"`
	Parameters   map[string]any `json:"parameters"`
	Outputs      []struct {
		Name       string          `json:"name"`
		Datatype   string          `json:"datatype"`
		Shape      []int64         `json:"shape"`
		Parameters map[string]any  `json:"parameters"`
		Data       json.RawMessage `json:"data"`
	} `json:"outputs"`
	Error string `json:"error"`
}

func do(t *testing.T, method, url, contentType string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

func TestHTTPInferRoundTrip(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{}
	srv := startHTTP(t, fb, 1<<20)
	tests := []struct {
		name     string
		input    string // $request_input
		want     Tensor // what the backend receives
		wantData string // the echo's data in the response
		wantSum  float64
	}{
		{"FP32 nested", `{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1.5,2],[3,-4]]}`,
			tensor("x", "FP32", []int64{2, 2}, rawFP32(1.5, 2, 3, -4)), "[1.5,2,3,-4]", 2.5},
		{"INT64", `{"name":"ids","shape":[3],"datatype":"INT64","data":[-1,0,9007199254740993]}`,
			tensor("ids", "INT64", []int64{3}, rawINT64(-1, 0, 9007199254740993)), "[-1,0,9007199254740993]", 0},
		{"BOOL", `{"name":"mask","shape":[1,3],"datatype":"BOOL","data":[true,false,true]}`,
			tensor("mask", "BOOL", []int64{1, 3}, []byte{1, 0, 1}), "[true,false,true]", 0},
		{"BYTES", `{"name":"text","shape":[2],"datatype":"BYTES","data":["hello","wörld \"q\""]}`,
			tensor("text", "BYTES", []int64{2}, rawBYTES("hello", `wörld "q"`)), `["hello","wörld \"q\""]`, 0},
		{"UINT8", `{"name":"img","shape":[1,2,2],"datatype":"UINT8","data":[[[0,1],[254,255]]]}`,
			tensor("img", "UINT8", []int64{1, 2, 2}, []byte{0, 1, 254, 255}), "[0,1,254,255]", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"id":"req-` + tt.name + `","parameters":{"latency_ms":20,"min_accuracy":70.5,"max_cost":0.25,"strict":true,"explain":false,"custom":"x"},` +
				`"inputs":[` + tt.input + `],"outputs":[{"name":"` + tt.want.Name + `_out"},{"name":"sum"}]}`
			// Content types vary between clients; all are accepted.
			code, hdr, b := do(t, "POST", srv.URL+"/v2/models/resnet50/infer", "text/plain", strings.NewReader(body))
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, b)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			got := fb.lastRequest()
			wantReq := Requirements{LatencyMs: 20, MinAccuracy: 70.5, MaxCost: 0.25, Strict: true}
			if got.Model != "resnet50" || got.ID != "req-"+tt.name || got.Requirements != wantReq ||
				!slices.Equal(got.Outputs, []string{tt.want.Name + "_out", "sum"}) {
				t.Errorf("backend got %+v", got)
			}
			in := got.Inputs[0]
			if in.Name != tt.want.Name || in.Datatype != tt.want.Datatype || !slices.Equal(in.Shape, tt.want.Shape) || !bytes.Equal(in.Data, tt.want.Data) {
				t.Errorf("backend got input %+v, want %+v", in, tt.want)
			}
			var resp httpResponse
			if err := json.Unmarshal(b, &resp); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			if resp.ModelName != "resnet50" || resp.ModelVersion != "1" || resp.ID != "req-"+tt.name {
				t.Errorf("response header %+v", resp)
			}
			wantParams := map[string]any{"variant": "resnet50-onnx-b8", "queue_ms": 1.5, "met": true, "batch": 8.0, "requests": float64(1 << 63)}
			if fmt.Sprint(resp.Parameters) != fmt.Sprint(wantParams) {
				t.Errorf("parameters %v, want %v", resp.Parameters, wantParams)
			}
			echo, sum := resp.Outputs[0], resp.Outputs[1]
			if echo.Name != tt.want.Name+"_out" || echo.Datatype != tt.want.Datatype || !slices.Equal(echo.Shape, tt.want.Shape) ||
				string(echo.Data) != tt.wantData {
				t.Errorf("echo %s %s %v %s, want data %s", echo.Name, echo.Datatype, echo.Shape, echo.Data, tt.wantData)
			}
			if sum.Name != "sum" || sum.Datatype != "FP64" || string(sum.Data) != "["+strconv.FormatFloat(tt.wantSum, 'g', -1, 64)+"]" {
				t.Errorf("sum %s %s %s, want %g", sum.Name, sum.Datatype, sum.Data, tt.wantSum)
			}
		})
	}
}

func TestHTTPInferErrors(t *testing.T) {
	noLeaks(t)
	const maxBody = 4096
	fb := &fakeBackend{}
	srv := startHTTP(t, fb, maxBody)
	input := func(datatype, shape, data string) string {
		return `{"inputs":[{"name":"x","datatype":"` + datatype + `","shape":` + shape + `,"data":` + data + `}]}`
	}
	good := input("FP32", "[1]", "[1]")
	withParams := func(params string) string {
		return `{"parameters":` + params + `,"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`
	}
	huge := input("FP32", "[3000]", "["+strings.Repeat("1,", 2999)+"1]")
	tests := []struct {
		name       string
		model      string
		body       string
		chunked    bool // no Content-Length: the limit is found while reading
		backendErr error
		wantStatus int
		wantErr    string
	}{
		{"unknown model", "nope", good, false, nil, 404, `model "nope": unknown model`},
		{"malformed JSON", "resnet50", `{"inputs":[{"name":"x",}]}`, false, nil, 400, "malformed JSON at line 1, column 24"},
		{"empty body", "resnet50", ``, false, nil, 400, "body is empty"},
		{"datatype mismatch", "resnet50", input("FP32", "[2]", `[1,"two"]`), false, nil, 400, "FP32 data must be a number, found a string"},
		{"value does not fit", "resnet50", input("UINT8", "[1]", `[300]`), false, nil, 400, "300 does not fit UINT8"},
		{"data length vs shape", "resnet50", input("FP32", "[2,3]", `[1,2,3]`), false, nil, 400, "shape [2 3] holds 6 elements, but data has 3"},
		{"empty batch", "resnet50", input("FP32", "[0,3]", `[]`), false, nil, 400, "empty batch"},
		{"no inputs", "resnet50", `{"inputs":[]}`, false, nil, 400, "no inputs"},
		{"negative latency", "resnet50", withParams(`{"latency_ms":-5}`), false, nil, 400,
			"invalid requirements: latency_ms must be a positive number of milliseconds, got -5"},
		{"accuracy 101", "resnet50", withParams(`{"min_accuracy":101}`), false, nil, 400,
			"min_accuracy must be a percentage between 0 and 100, got 101"},
		{"strict not bool", "resnet50", withParams(`{"strict":"yes"}`), false, nil, 400, "strict must be true or false"},
		{"oversized body", "resnet50", huge, false, nil, 413, "request body too large"},
		{"oversized chunked body", "resnet50", huge, true, nil, 413, "over the limit of 4096 bytes"},
		{"overloaded", "resnet50", good, false, fmt.Errorf("queue full: %w", controller.ErrOverloaded), 503, "overloaded"},
		{"unsatisfiable", "resnet50", good, false, fmt.Errorf("no variant meets 1 ms: %w", controller.ErrUnsatisfiable), 422, "1 ms"},
		{"bad input for the model", "resnet50", good, false, fmt.Errorf("input x wants [1 3 224 224]: %w", controller.ErrBadInput), 400, "224"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb.mu.Lock()
			fb.err = tt.backendErr
			fb.mu.Unlock()
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length from net/http
			}
			code, _, b := do(t, "POST", srv.URL+"/v2/models/"+tt.model+"/infer", "application/json", body)
			var resp struct{ Error string }
			if err := json.Unmarshal(b, &resp); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			if code != tt.wantStatus || !strings.Contains(resp.Error, tt.wantErr) {
				t.Errorf("got %d %q, want %d saying %q", code, resp.Error, tt.wantStatus, tt.wantErr)
			}
		})
	}
}

func TestHTTPInferRefusesInconsistentBackendOutput(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{respond: func(*InferRequest) *InferResponse {
		return &InferResponse{Outputs: []Tensor{tensor("y", "FP32", []int64{4}, rawFP32(1))}}
	}}
	srv := startHTTP(t, fb, 1<<20)
	code, _, b := do(t, "POST", srv.URL+"/v2/models/resnet50/infer", "", strings.NewReader(
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`))
	if code != http.StatusInternalServerError || !strings.Contains(string(b), "inconsistent output") {
		t.Errorf("got %d %s", code, b)
	}
}

func TestHTTPModelNamesAndVersions(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{}
	srv := startHTTP(t, fb, 1<<20)
	body := `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`
	tests := []struct {
		path                   string
		wantModel, wantVersion string
	}{
		{"/v2/models/resnet50/infer", "resnet50", ""},
		{"/v2/models/resnet50/versions/2/infer", "resnet50", "2"},
		{"/v2/models/image_classification.imagenet/infer", "image_classification.imagenet", ""},
		{"/v2/models/image_classification%2Fimagenet/infer", "image_classification/imagenet", ""},
		{"/v2/models/image_classification%2Fimagenet/versions/1/infer", "image_classification/imagenet", "1"},
	}
	for _, tt := range tests {
		code, _, b := do(t, "POST", srv.URL+tt.path, "application/json", strings.NewReader(body))
		got := fb.lastRequest()
		if code != http.StatusOK || got.Model != tt.wantModel || got.Version != tt.wantVersion {
			t.Errorf("%s: %d %s; backend got model %q version %q, want %q %q", tt.path, code, b, got.Model, got.Version, tt.wantModel, tt.wantVersion)
		}
		var resp httpResponse
		if err := json.Unmarshal(b, &resp); err != nil || resp.ModelName != tt.wantModel {
			t.Errorf("%s: response model_name %q (%v)", tt.path, resp.ModelName, err)
		}
	}
}

func TestHTTPMetadataAndReadiness(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{}
	srv := startHTTP(t, fb, 1<<20)
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string // JSON, compared after normalising
	}{
		{"/v2", 200, `{"name":"infaas","version":"devel","extensions":["model_less","binary_tensor_data"]}`},
		{"/v2/models/resnet50", 200, `{"name":"resnet50","versions":["1","2"],"platform":"onnxruntime_onnx",` +
			`"inputs":[{"name":"x","datatype":"FP32","shape":[-1,3,224,224]}],"outputs":[{"name":"probs","datatype":"FP32","shape":[-1,1000]}]}`},
		{"/v2/models/resnet50/versions/2", 200, ""},
		{"/v2/models/resnet50/versions/3", 404, `{"error":"model \"resnet50\" has no version \"3\" (it has [1 2]): unknown model"}`},
		{"/v2/models/image_classification%2Fimagenet", 200, ""},
		{"/v2/models/nope", 404, `{"error":"model \"nope\": unknown model"}`},
		{"/v2/models/resnet50/ready", 200, `{"name":"resnet50","ready":true}`},
		{"/v2/models/resnet50/versions/1/ready", 200, `{"name":"resnet50","ready":true}`},
		{"/v2/models/warming/ready", 503, `{"name":"warming","ready":false}`},
		{"/v2/models/nope/ready", 404, `{"error":"model \"nope\": unknown model"}`},
		{"/v2/health/ready", 200, `{"ready":true}`},
	}
	for _, tt := range tests {
		code, _, b := do(t, "GET", srv.URL+tt.path, "", nil)
		if code != tt.wantStatus {
			t.Errorf("GET %s: %d %s, want %d", tt.path, code, b, tt.wantStatus)
		}
		if tt.wantBody != "" && compactJSON(t, b) != compactJSON(t, []byte(tt.wantBody)) {
			t.Errorf("GET %s:\n got %s\nwant %s", tt.path, compactJSON(t, b), tt.wantBody)
		}
	}
	fb.mu.Lock()
	fb.notReady = true
	fb.mu.Unlock()
	if code, _, b := do(t, "GET", srv.URL+"/v2/health/ready", "", nil); code != 503 || compactJSON(t, b) != `{"ready":false}` {
		t.Errorf("not ready: %d %s", code, b)
	}
}

func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return buf.String()
}

// TestHTTPBinaryTensorData drives the binary tensor data extension as the
// Triton and KServe clients use it: binary inputs after the JSON header,
// and binary outputs when asked for.
func TestHTTPBinaryTensorData(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{}
	srv := startHTTP(t, fb, 1<<20)
	header := `{"id":"b1","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}},` +
		`{"name":"h","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":4}}],` +
		`"outputs":[{"name":"x_out","parameters":{"binary_data":true}},{"name":"h_out","parameters":{"binary_data":false}},{"name":"sum"}]}`
	body := append([]byte(header), rawFP32(1, 2, 3.5)...)
	body = append(body, 0x00, 0x3c, 0x00, 0xc0) // FP16 1, -2
	req, err := http.NewRequest("POST", srv.URL+"/v2/models/resnet50/infer", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(headerJSONLength, strconv.Itoa(len(header)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	jsonLen, err := strconv.Atoi(res.Header.Get(headerJSONLength))
	if err != nil || jsonLen > len(b) {
		t.Fatalf("%s = %q for a %d-byte body", headerJSONLength, res.Header.Get(headerJSONLength), len(b))
	}
	var resp httpResponse
	if err := json.Unmarshal(b[:jsonLen], &resp); err != nil {
		t.Fatalf("%v: %s", err, b[:jsonLen])
	}
	x, h, sum := resp.Outputs[0], resp.Outputs[1], resp.Outputs[2]
	if x.Name != "x_out" || x.Data != nil || x.Parameters["binary_data_size"] != 12.0 {
		t.Errorf("binary output %+v", x)
	}
	if !bytes.Equal(b[jsonLen:], rawFP32(1, 2, 3.5)) {
		t.Errorf("binary part %v", b[jsonLen:])
	}
	if string(h.Data) != "[1,-2]" || string(sum.Data) != "[6.5]" {
		t.Errorf("JSON outputs %s %s", h.Data, sum.Data)
	}
}

func TestHTTPFloatSpecials(t *testing.T) {
	noLeaks(t)
	fb := &fakeBackend{respond: func(*InferRequest) *InferResponse {
		return &InferResponse{Outputs: []Tensor{tensor("y", "FP32", []int64{3}, rawFP32(float32(math.NaN()), float32(math.Inf(-1)), 0.1))}}
	}}
	srv := startHTTP(t, fb, 1<<20)
	_, _, b := do(t, "POST", srv.URL+"/v2/models/resnet50/infer", "", strings.NewReader(
		`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`))
	if !json.Valid(b) || !bytes.Contains(b, []byte(`"data":[null,null,0.1]`)) {
		t.Errorf("NaN and infinities must become null: %s", b)
	}
}
