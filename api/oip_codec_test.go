package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infaas/infaas/controller"
)

func TestDecodeJSONRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Tensor
	}{
		{"flat FP32", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2.5,-3e2,0]}]}`,
			[]Tensor{tensor("x", "FP32", []int64{2, 2}, rawFP32(1, 2.5, -300, 0))}},
		{"nested FP32", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}`,
			[]Tensor{tensor("x", "FP32", []int64{2, 2}, rawFP32(1, 2, 3, 4))}},
		{"nested three levels", `{"inputs":[{"name":"x","shape":[1,2,1],"datatype":"FP64","data":[[[1],[2]]]}]}`,
			[]Tensor{tensor("x", "FP64", []int64{1, 2, 1}, rawFP64(1, 2))}},
		{"INT64 extremes", `{"inputs":[{"name":"i","shape":[3],"datatype":"INT64","data":[-9223372036854775808,9223372036854775807,-0]}]}`,
			[]Tensor{tensor("i", "INT64", []int64{3}, rawINT64(math.MinInt64, math.MaxInt64, 0))}},
		{"INT8 and UINT8 bounds", `{"inputs":[{"name":"a","shape":[2],"datatype":"INT8","data":[-128,127]},` +
			`{"name":"b","shape":[2],"datatype":"UINT8","data":[0,255]}]}`,
			[]Tensor{tensor("a", "INT8", []int64{2}, []byte{0x80, 0x7f}), tensor("b", "UINT8", []int64{2}, []byte{0, 255})}},
		{"UINT16 INT32 UINT32", `{"inputs":[{"name":"a","shape":[1],"datatype":"UINT16","data":[65535]},` +
			`{"name":"b","shape":[1],"datatype":"INT32","data":[-2]},{"name":"c","shape":[1],"datatype":"UINT32","data":[4294967295]}]}`,
			[]Tensor{tensor("a", "UINT16", []int64{1}, []byte{255, 255}), tensor("b", "INT32", []int64{1}, []byte{0xfe, 0xff, 0xff, 0xff}),
				tensor("c", "UINT32", []int64{1}, []byte{255, 255, 255, 255})}},
		{"UINT64 max", `{"inputs":[{"name":"u","shape":[1],"datatype":"UINT64","data":[18446744073709551615]}]}`,
			[]Tensor{tensor("u", "UINT64", []int64{1}, bytes.Repeat([]byte{255}, 8))}},
		{"BOOL", `{"inputs":[{"name":"b","shape":[3],"datatype":"BOOL","data":[true,false,true]}]}`,
			[]Tensor{tensor("b", "BOOL", []int64{3}, []byte{1, 0, 1})}},
		{"BYTES with escapes and unicode", `{"inputs":[{"name":"s","shape":[3],"datatype":"BYTES","data":["plain","a\"b\\n\u00e9\ud83d\ude00","ü"]}]}`,
			[]Tensor{tensor("s", "BYTES", []int64{3}, rawBYTES("plain", "a\"b\\n\u00e9\U0001F600", "ü"))}},
		{"data before datatype and shape", `{"inputs":[{"data":[[1,2]],"name":"x","datatype":"FP32","shape":[1,2]}]}`,
			[]Tensor{tensor("x", "FP32", []int64{1, 2}, rawFP32(1, 2))}},
		{"whitespace everywhere", " {\n \"inputs\" : [ { \"name\" : \"x\" , \"shape\" : [ 1 ] , \"datatype\" : \"FP32\" , \"data\" : [ 7 ] } ] } \n",
			[]Tensor{tensor("x", "FP32", []int64{1}, rawFP32(7))}},
		{"unknown keys skipped", `{"extra":{"a":[1,{"b":null}],"c":"\u0041"},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"future":[true]}]}`,
			[]Tensor{tensor("x", "FP32", []int64{1}, rawFP32(1))}},
		{"scalar shape", `{"inputs":[{"name":"x","shape":[],"datatype":"INT64","data":[5]}]}`,
			[]Tensor{tensor("x", "INT64", []int64{}, rawINT64(5))}},
		{"zero inner dimension", `{"inputs":[{"name":"x","shape":[1,0],"datatype":"FP32","data":[[]]}]}`,
			[]Tensor{tensor("x", "FP32", []int64{1, 0}, []byte{})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := decodeJSONRequest([]byte(tt.body), -1)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.inputs) != len(tt.want) {
				t.Fatalf("got %d inputs, want %d", len(req.inputs), len(tt.want))
			}
			for i, got := range req.inputs {
				w := tt.want[i]
				if got.Name != w.Name || got.Datatype != w.Datatype || !slices.Equal(got.Shape, w.Shape) || !bytes.Equal(got.Data, w.Data) {
					t.Errorf("input %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestDecodeJSONRequestFields(t *testing.T) {
	body := `{"id":"q-7","parameters":{"latency_ms":50,"strict":true,"tag":"a","nested":{"k":[1.5]},"none":null},` +
		`"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],` +
		`"outputs":[{"name":"probs","parameters":{"binary_data":true}},{"name":"label"}]}`
	req, err := decodeJSONRequest([]byte(body), -1)
	if err != nil {
		t.Fatal(err)
	}
	if req.id != "q-7" {
		t.Errorf("id = %q", req.id)
	}
	wantParams := map[string]any{"latency_ms": json.Number("50"), "strict": true, "tag": "a",
		"nested": map[string]any{"k": []any{json.Number("1.5")}}, "none": nil}
	if !reflect.DeepEqual(req.params, wantParams) {
		t.Errorf("params = %#v, want %#v", req.params, wantParams)
	}
	if !reflect.DeepEqual(req.outputs, []string{"probs", "label"}) {
		t.Errorf("outputs = %q", req.outputs)
	}
	if !req.wantsBinary("probs") || req.wantsBinary("label") {
		t.Errorf("binary outputs = %v", req.binaryOutputs)
	}
}

func TestDecodeJSONRequestBinaryExtension(t *testing.T) {
	header := `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},` +
		`{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}},` +
		`{"name":"j","shape":[1],"datatype":"INT64","data":[3]}],"parameters":{"binary_data_output":true}}`
	body := append([]byte(header), rawFP32(1.5, -2)...)
	body = append(body, rawBYTES("abc")...)
	req, err := decodeJSONRequest(body, len(header))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(req.inputs[0].Data, rawFP32(1.5, -2)) || !bytes.Equal(req.inputs[1].Data, rawBYTES("abc")) ||
		!bytes.Equal(req.inputs[2].Data, rawINT64(3)) {
		t.Errorf("inputs = %+v", req.inputs)
	}
	if !req.wantsBinary("anything") {
		t.Error("binary_data_output is not honoured")
	}
}

func TestDecodeJSONRequestErrors(t *testing.T) {
	in := func(datatype, shape, data string) string {
		return `{"inputs":[{"name":"x","datatype":"` + datatype + `","shape":` + shape + `,"data":` + data + `}]}`
	}
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	tests := []struct {
		name      string
		body      string
		headerLen int    // 0: the body is the JSON, followed by binary
		want      string // in the message
	}{
		{"empty", ``, -1, "line 1, column 1"},
		{"not an object", `[1]`, -1, "expected an object"},
		{"truncated", `{"inputs":[{"name":"x"`, -1, "found the end of the body"},
		{"missing colon", `{"inputs" [1]}`, -1, "expected ':'"},
		{"trailing comma", `{"inputs":[],}`, -1, "expected a quoted key"},
		{"position on line 3", "{\n\"id\": \"a\",\n  \"inputs\": [}", -1, "line 3, column 14"},
		{"trailing garbage", `{"inputs":[]} x`, -1, "after its object"},
		{"control character", "{\"id\":\"a\nb\"}", -1, "control character"},
		{"bad escape", `{"id":"\x"}`, -1, "invalid escape"},
		{"bad literal", `{"id":nul}`, -1, "string"},
		{"bad number", `{"x":01}`, -1, "expected ',' or '}'"},
		{"too deep", `{"x":` + deep + `}`, -1, "nested deeper"},
		{"id not a string", `{"id":7,"inputs":[]}`, -1, "id must be a string"},
		{"no inputs key", `{"id":"a"}`, -1, "no inputs"},
		{"empty inputs", `{"inputs":[]}`, -1, "no inputs"},
		{"unknown datatype", in("FLOAT", "[1]", "[1]"), -1, `datatype "FLOAT" is unknown`},
		{"FP16 as JSON", in("FP16", "[1]", "[1]"), -1, "cannot be sent as JSON"},
		{"BF16 as JSON", in("BF16", "[1]", "[1]"), -1, "cannot be sent as JSON"},
		{"300 into UINT8", in("UINT8", "[2]", "[1,300]"), -1, "element 1: 300 does not fit UINT8 (0 to 255)"},
		{"-1 into UINT16", in("UINT16", "[1]", "[-1]"), -1, "-1 does not fit UINT16 (0 to 65535)"},
		{"-129 into INT8", in("INT8", "[1]", "[-129]"), -1, "-129 does not fit INT8 (-128 to 127)"},
		{"2^63 into INT64", in("INT64", "[1]", "[9223372036854775808]"), -1, "does not fit INT64"},
		{"2^64 into UINT64", in("UINT64", "[1]", "[18446744073709551616]"), -1, "does not fit UINT64 (0 to 18446744073709551615)"},
		{"fraction into INT32", in("INT32", "[1]", "[1.5]"), -1, "1.5 is not an integer"},
		{"string into FP32", in("FP32", "[2]", `[1,"a"]`), -1, "element 1: FP32 data must be a number, found a string"},
		{"bool into FP32", in("FP32", "[1]", `[true]`), -1, "found a boolean"},
		{"null into FP64", in("FP64", "[1]", `[null]`), -1, "found null"},
		{"number into BOOL", in("BOOL", "[1]", `[1]`), -1, "must be true or false"},
		{"number into BYTES", in("BYTES", "[1]", `[1]`), -1, "must be a string"},
		{"overflow FP32", in("FP32", "[1]", `[1e39]`), -1, "1e39 does not fit FP32"},
		{"NaN token", in("FP32", "[1]", `[NaN]`), -1, "must be a number"},
		{"data not an array", in("FP32", "[1]", `1`), -1, "data must be an array"},
		{"too few elements", in("FP32", "[2,2]", "[1,2,3]"), -1, "shape [2 2] holds 4 elements, but data has 3"},
		{"too many elements", in("INT64", "[1]", "[1,2]"), -1, "holds 1 elements, but data has 2"},
		{"ragged nesting", in("FP32", "[2,2]", "[[1,2],[3]]"), -1, "does not follow shape"},
		{"mixed nesting", in("FP32", "[2,2]", "[[1,2],3,4]"), -1, "does not follow shape"},
		{"deeper than shape", in("FP32", "[2]", "[[1],[2]]"), -1, "does not follow shape"},
		{"shallower than shape", in("FP32", "[2,2,1]", "[[1,2],[3,4]]"), -1, "does not follow shape"},
		{"deferred data is checked", `{"inputs":[{"data":[1,2,3],"name":"x","datatype":"FP32","shape":[2]}]}`, -1, "data has 3"},
		{"negative dimension", in("FP32", "[1,-2]", "[1]"), -1, "negative dimension"},
		{"empty batch", in("FP32", "[0,3]", "[]"), -1, "empty batch"},
		{"shape not integers", in("FP32", `[1.0]`, "[1]"), -1, "shape dimension must be an integer"},
		{"no shape", `{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`, -1, "has no shape"},
		{"no data", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]}`, -1, "has no data"},
		{"no name", `{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}`, -1, "has no name"},
		{"no datatype", `{"inputs":[{"name":"x","shape":[1],"data":[1]}]}`, -1, `datatype "" is unknown`},
		{"output without name", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[{}]}`, -1, "no name"},
		{"binary header past body", `{}`, 10, "only 2 bytes"},
		{"binary size too big", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":8}}]}`, 0, "only 4 bytes"},
		{"binary size wrong for shape", `{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":4}}]}`, 0, "needs 8"},
		{"binary and data", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}}]}`, 0, "both data and binary_data_size"},
		{"binary left over", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, 0, "4 bytes of binary data"},
		{"binary size not a count", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":"4"}}]}`, -1, "non-negative integer"},
		{"binary BYTES framing", `{"inputs":[{"name":"s","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":4}}]}`, 0, "claims 9 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, headerLen := []byte(tt.body), tt.headerLen
			if headerLen == 0 {
				headerLen = len(body)
				if strings.Contains(tt.name, "BYTES") {
					body = append(body, 9, 0, 0, 0)
				} else {
					body = append(body, "abcd"...)
				}
			}
			_, err := decodeJSONRequest(body, headerLen)
			if err == nil {
				t.Fatalf("accepted %s", tt.body)
			}
			if Status(err) != http.StatusBadRequest {
				t.Errorf("status %d for %v, want 400", Status(err), err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestRequirementsFrom(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]any
		want    Requirements
		wantErr string
	}{
		{"none", nil, Requirements{}, ""},
		{"all from JSON", map[string]any{"latency_ms": json.Number("20.5"), "min_accuracy": json.Number("75"),
			"max_cost": json.Number("0.3"), "strict": true, "explain": true, "other": "kept out"},
			Requirements{LatencyMs: 20.5, MinAccuracy: 75, MaxCost: 0.3, Strict: true, Explain: true}, ""},
		{"gRPC types", map[string]any{"latency_ms": int64(50), "min_accuracy": 99.5, "max_cost": uint64(2)},
			Requirements{LatencyMs: 50, MinAccuracy: 99.5, MaxCost: 2}, ""},
		{"bounds", map[string]any{"latency_ms": int64(3_600_000), "min_accuracy": int64(100), "max_cost": int64(0)},
			Requirements{LatencyMs: 3_600_000, MinAccuracy: 100}, ""},
		{"negative latency", map[string]any{"latency_ms": json.Number("-5")}, Requirements{},
			"latency_ms must be a positive number of milliseconds, got -5"},
		{"absurd latency", map[string]any{"latency_ms": int64(3_600_001)}, Requirements{},
			"latency_ms must be at most 3600000 (one hour), got 3600001"},
		{"latency as string", map[string]any{"latency_ms": "50"}, Requirements{},
			`latency_ms must be a positive number of milliseconds, got the string "50"`},
		{"latency NaN", map[string]any{"latency_ms": math.NaN()}, Requirements{}, "got NaN"},
		{"accuracy 101", map[string]any{"min_accuracy": json.Number("101")}, Requirements{},
			"min_accuracy must be a percentage between 0 and 100, got 101"},
		{"accuracy negative", map[string]any{"min_accuracy": -1.0}, Requirements{}, "got -1"},
		{"negative cost", map[string]any{"max_cost": json.Number("-0.1")}, Requirements{},
			"max_cost must be a non-negative cost in USD per 1,000 queries, got -0.1"},
		{"strict not bool", map[string]any{"strict": "yes"}, Requirements{}, `strict must be true or false, got the string "yes"`},
		{"explain number", map[string]any{"explain": int64(1)}, Requirements{}, "explain must be true or false, got 1"},
		{"null latency", map[string]any{"latency_ms": nil}, Requirements{}, "got null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requirementsFrom(tt.params)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, controller.ErrBadRequirements) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want ErrBadRequirements saying %q", err, tt.wantErr)
			}
			if Status(err) != http.StatusBadRequest {
				t.Errorf("status %d, want 400", Status(err))
			}
		})
	}
}

func TestHalfFloats(t *testing.T) {
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.33325195}, {0x7bff, 65504},
		{0x0001, 1.0 / (1 << 24)}, {0x8001, -1.0 / (1 << 24)}, {0x03ff, 0.000060975552},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		if got := halfToFloat32(tt.h); got != tt.want {
			t.Errorf("halfToFloat32(%#04x) = %g, want %g", tt.h, got, tt.want)
		}
	}
	if got := halfToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("halfToFloat32(0x7e00) = %g, want NaN", got)
	}
	if got := bfloat16ToFloat32(0x3f80); got != 1 {
		t.Errorf("bfloat16ToFloat32(0x3f80) = %g, want 1", got)
	}
	if got := bfloat16ToFloat32(0xc040); got != -3 {
		t.Errorf("bfloat16ToFloat32(0xc040) = %g, want -3", got)
	}
}

func TestAppendJSONResponse(t *testing.T) {
	u16 := func(vs ...uint16) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
		return b
	}
	resp := &InferResponse{
		Model: "m", Version: "2", ID: "q\"1",
		Parameters: map[string]any{"variant": "v", "queue_ms": 1.5, "bad": math.Inf(1)},
		Outputs: []Tensor{
			tensor("f32", "FP32", []int64{2, 2}, rawFP32(1, -0.5, float32(math.NaN()), 1e-7)),
			tensor("f64", "FP64", []int64{1}, rawFP64(math.Pi)),
			tensor("i64", "INT64", []int64{2}, rawINT64(-1, math.MaxInt64)),
			tensor("i8", "INT8", []int64{2}, []byte{0xff, 0x7f}),
			tensor("u8", "UINT8", []int64{1}, []byte{200}),
			tensor("i16", "INT16", []int64{1}, u16(0xfffe)),
			tensor("u16", "UINT16", []int64{1}, u16(0xfffe)),
			tensor("i32", "INT32", []int64{1}, []byte{0xfd, 0xff, 0xff, 0xff}),
			tensor("u32", "UINT32", []int64{1}, []byte{0xfd, 0xff, 0xff, 0xff}),
			tensor("u64", "UINT64", []int64{1}, bytes.Repeat([]byte{0xff}, 8)),
			tensor("b", "BOOL", []int64{2}, []byte{1, 0}),
			tensor("s", "BYTES", []int64{3}, rawBYTES("a\"\n", "\xff", "é")),
			tensor("h", "FP16", []int64{2}, u16(0x3c00, 0xc000)),
			tensor("bf", "BF16", []int64{1}, u16(0x3f80)),
			tensor("empty", "FP32", []int64{1, 0}, nil),
			tensor("no detections", "FP32", []int64{0, 4}, nil),
		},
	}
	out, tail, err := appendJSONResponse(nil, resp, nil)
	if err != nil || tail != nil {
		t.Fatal(err, tail)
	}
	var got struct {
		ModelName    string         `json:"model_name"`
		ModelVersion string         `json:"model_version"`
		ID           string         `json:"id"`
		Parameters   map[string]any `json:"parameters"`
		Outputs      []struct {
			Name     string  `json:"name"`
			Datatype string  `json:"datatype"`
			Shape    []int64 `json:"shape"`
			Data     []any   `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if got.ModelName != "m" || got.ModelVersion != "2" || got.ID != "q\"1" {
		t.Errorf("header = %+v", got)
	}
	wantParams := map[string]any{"variant": "v", "queue_ms": 1.5, "bad": "+Inf"}
	if !reflect.DeepEqual(got.Parameters, wantParams) {
		t.Errorf("parameters = %v, want %v", got.Parameters, wantParams)
	}
	want := map[string]string{
		"f32": "[1 -0.5 <nil> 1e-07]", "f64": "[3.141592653589793]", "i64": "[-1 9.223372036854776e+18]",
		"i8": "[-1 127]", "u8": "[200]", "i16": "[-2]", "u16": "[65534]", "i32": "[-3]", "u32": "[4.294967293e+09]",
		"u64": "[1.8446744073709552e+19]", "b": "[true false]", "s": "[a\"\n \ufffd é]", "h": "[1 -2]", "bf": "[1]", "empty": "[]", "no detections": "[]",
	}
	for i, o := range got.Outputs {
		if o.Name != resp.Outputs[i].Name || o.Datatype != resp.Outputs[i].Datatype || !reflect.DeepEqual(o.Shape, resp.Outputs[i].Shape) {
			t.Errorf("output %d header = %+v", i, o)
		}
		if s := fmt.Sprint(o.Data); s != want[o.Name] {
			t.Errorf("output %s data = %s, want %s", o.Name, s, want[o.Name])
		}
	}
	// Exact integers, which float64 above cannot show.
	if !bytes.Contains(out, []byte(`[-1,9223372036854775807]`)) || !bytes.Contains(out, []byte(`[18446744073709551615]`)) {
		t.Errorf("64-bit integers not written exactly: %s", out)
	}

	_, tail, err = appendJSONResponse(nil, resp, func(name string) bool { return name == "f64" || name == "s" })
	if err != nil || len(tail) != 2 || !bytes.Equal(tail[0], resp.Outputs[1].Data) || !bytes.Equal(tail[1], resp.Outputs[11].Data) {
		t.Errorf("binary outputs: %v %v", tail, err)
	}
}

func TestAppendJSONResponseRefusesInconsistentOutputs(t *testing.T) {
	for _, o := range []Tensor{
		tensor("x", "FP32", []int64{2}, rawFP32(1)),
		tensor("x", "FLOAT", []int64{1}, rawFP32(1)),
		tensor("x", "BYTES", []int64{2}, rawBYTES("a")),
		tensor("x", "BYTES", []int64{1}, []byte{9, 0, 0, 0, 'a'}),
		tensor("", "FP32", []int64{1}, rawFP32(1)),
	} {
		_, _, err := appendJSONResponse(nil, &InferResponse{Outputs: []Tensor{o}}, nil)
		if err == nil || Status(err) != http.StatusInternalServerError {
			t.Errorf("output %+v: error %v, want a 500", o, err)
		}
	}
}

// FuzzDecodeJSONRequest checks that the parser never panics and never
// accepts a body encoding/json finds malformed.
func FuzzDecodeJSONRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","parameters":{"latency_ms":5},"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}`,
		`{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","data":["\u00e9"]}],"outputs":[{"name":"y"}]}`,
		`{"inputs":[{"data":[true],"name":"b","shape":[1],"datatype":"BOOL"}]}`,
		`{"inputs":[{"name":"i","shape":[1],"datatype":"INT8","data":[-128]}],"x":[{},[],null,1e5,"\""]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := decodeJSONRequest(body, -1); err == nil && !json.Valid(body) {
			t.Fatalf("accepted malformed JSON %q", body)
		}
	})
}

func BenchmarkDecodeJSONRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
		elem func(i int) string
	}{
		// Pixel values as a client sends MNIST: small integers.
		{"FP32x784/pixels", 784, func(i int) string { return strconv.Itoa(i * 7 % 256) }},
		// Normalised pixels as Python's json writes float32 values
		// widened to float64: 17 significant digits.
		{"FP32x784/python", 784, func(i int) string { return strconv.FormatFloat(float64(float32(i%255)/255), 'g', 17, 64) }},
		{"FP32x150528/python", 150528, func(i int) string { return strconv.FormatFloat(float64(float32(i%255)/255), 'g', 17, 64) }},
	} {
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"id":"1","parameters":{"latency_ms":20},"inputs":[{"name":"x","shape":[1,%d],"datatype":"FP32","data":[`, bc.n)
		for i := range bc.n {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(bc.elem(i))
		}
		sb.WriteString("]}]}")
		body := []byte(sb.String())
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeJSONRequest(body, -1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendJSONResponse(b *testing.B) {
	data := make([]float32, 1000)
	for i := range data {
		data[i] = float32(i) / 997
	}
	resp := &InferResponse{Model: "m", ID: "1", Parameters: map[string]any{"variant": "v"},
		Outputs: []Tensor{tensor("probs", "FP32", []int64{1, 1000}, rawFP32(data...))}}
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := appendJSONResponse(buf[:0], resp, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzJSONNumber checks the one-pass number conversion against strconv.
func FuzzJSONNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1", "0.1", "-12.5e-3", "16777217", "3.4028235e38", "1e-45", "0.000001",
		"9007199254740993", "123456789012345678901", "18446744073709551615", "1E+22", "0.0039215688593685627"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := &jsonParser{buf: []byte(s)}
		n, err := p.number()
		if err != nil || p.pos != len(s) {
			return
		}
		for _, bits := range []int{32, 64} {
			want, werr := strconv.ParseFloat(s, bits)
			got, ok := n.float(bits)
			if ok != (werr == nil) || (ok && math.Float64bits(got) != math.Float64bits(want)) {
				t.Fatalf("%q as %d bits: got %v (%v), strconv %v (%v)", s, bits, got, ok, want, werr)
			}
		}
		if n.integer {
			want, werr := strconv.ParseUint(strings.TrimPrefix(s, "-"), 10, 64)
			got, ok := n.magnitude()
			if ok != (werr == nil) || (ok && got != want) {
				t.Fatalf("%q magnitude: got %d (%v), strconv %d (%v)", s, got, ok, want, werr)
			}
		}
	})
}
