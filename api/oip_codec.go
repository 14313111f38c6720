package api

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strconv"

	"github.com/infaas/infaas/controller"
	"github.com/infaas/infaas/executor"
)

// This file holds what the Open Inference Protocol's two transports share:
// datatypes and shapes, the raw tensor layout, requirements read from
// request parameters, and the server's identity. The JSON body is parsed in
// oip_json.go, the protobuf messages are converted in oip_grpc.go.

// Server identity reported by GET /v2 and ServerMetadata.
const (
	serverName = "infaas"
	// extModelLess: a request may name a use case or an architecture instead
	// of a model and carry requirements in its parameters.
	extModelLess = "model_less"
	// extBinaryTensorData: the HTTP binary tensor data extension (the JSON
	// header followed by raw tensors, Inference-Header-Content-Length).
	extBinaryTensorData = "binary_tensor_data"
)

var serverExtensions = []string{extModelLess, extBinaryTensorData}

// serverVersion is the main module's version from the build information,
// or "devel" for a build outside a tagged module.
var serverVersion = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}()

const (
	// maxElements bounds a tensor's element count so that count × element
	// size never overflows.
	maxElements = 1 << 40
	// maxLatencyMs bounds latency_ms: a target over an hour is a unit mistake.
	maxLatencyMs = 3_600_000
)

const datatypeBytes = "BYTES"

// infer runs a decoded request on the backend and completes the response:
// the model and id default to the request's, as the protocol echoes them.
func infer(ctx context.Context, b Backend, req *InferRequest) (*InferResponse, error) {
	resp, err := b.Infer(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, errors.New("backend returned no response and no error")
	}
	if resp.Model == "" {
		resp.Model = req.Model
	}
	if resp.ID == "" {
		resp.ID = req.ID
	}
	return resp, nil
}

// modelMetadata asks the backend about a model; a version the model does
// not list is unknown.
func modelMetadata(ctx context.Context, b Backend, name, version string) (ModelMetadata, error) {
	md, err := b.ModelMetadata(ctx, name)
	if err != nil {
		return md, err
	}
	if version != "" && len(md.Versions) > 0 && !slices.Contains(md.Versions, version) {
		return md, fmt.Errorf("model %q has no version %q (it has %v): %w", name, version, md.Versions, controller.ErrUnknownModel)
	}
	return md, nil
}

// elementSize is the size of one element of a datatype in bytes, 0 for
// BYTES (variable size), and an error for an unknown datatype.
func elementSize(datatype string) (int, error) {
	if datatype == datatypeBytes {
		return 0, nil
	}
	if n := executor.ElementSize(datatype); n > 0 {
		return n, nil
	}
	return 0, fmt.Errorf("%w: datatype %q is unknown; use one of BOOL, UINT8, UINT16, UINT32, UINT64, "+
		"INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES", ErrBadRequest, datatype)
}

// inputCount checks an input's shape, which must not be an empty batch, and
// returns its number of elements. (An output may be empty: a detector that
// finds nothing answers [0, 4].)
func inputCount(tensor string, shape []int64) (int, error) {
	if len(shape) > 0 && shape[0] == 0 {
		return 0, fmt.Errorf("%w: %s: shape %v is an empty batch; send at least one item", ErrBadRequest, tensor, shape)
	}
	return elementCount(tensor, shape)
}

// elementCount checks a tensor's shape and returns its number of elements.
func elementCount(tensor string, shape []int64) (int, error) {
	n := int64(1)
	for _, d := range shape {
		switch {
		case d < 0:
			return 0, fmt.Errorf("%w: %s: shape %v has a negative dimension", ErrBadRequest, tensor, shape)
		case d > 0 && n > maxElements/d:
			return 0, fmt.Errorf("%w: %s: shape %v has more than %d elements", ErrBadRequest, tensor, shape, int64(maxElements))
		}
		n *= d
	}
	return int(n), nil
}

// tensorHeader checks a tensor's name, datatype and shape and returns its
// element count and element size (0 for BYTES).
func tensorHeader(kind, name, datatype string, shape []int64) (count, size int, err error) {
	if name == "" {
		return 0, 0, fmt.Errorf("%w: an %s has no name", ErrBadRequest, kind)
	}
	label := kind + " " + strconv.Quote(name)
	if size, err = elementSize(datatype); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", label, err)
	}
	if kind == "input" {
		count, err = inputCount(label, shape)
	} else {
		count, err = elementCount(label, shape)
	}
	return count, size, err
}

// checkRaw checks that data, in the raw layout, holds exactly count elements
// of the datatype: count × size bytes, or count length-prefixed BYTES
// elements.
func checkRaw(label, datatype string, shape []int64, count, size int, data []byte) error {
	if size > 0 {
		if want := count * size; len(data) != want {
			return fmt.Errorf("%w: %s: %d bytes of raw data, but shape %v of %s needs %d (%d elements × %d bytes)",
				ErrBadRequest, label, len(data), shape, datatype, want, count, size)
		}
		return nil
	}
	n, err := countBytesElements(data)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadRequest, label, err)
	}
	if n != count {
		return fmt.Errorf("%w: %s: raw BYTES data holds %d elements, but shape %v needs %d",
			ErrBadRequest, label, n, shape, count)
	}
	return nil
}

// appendBytesElement appends one BYTES element in the raw layout: a 4-byte
// little-endian length, then the bytes.
func appendBytesElement(dst, s []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// appendUint appends the low width bytes of v, little-endian.
func appendUint(dst []byte, v uint64, width int) []byte {
	switch width {
	case 1:
		return append(dst, byte(v))
	case 2:
		return binary.LittleEndian.AppendUint16(dst, uint16(v))
	case 4:
		return binary.LittleEndian.AppendUint32(dst, uint32(v))
	}
	return binary.LittleEndian.AppendUint64(dst, v)
}

// countBytesElements counts the elements of raw BYTES data and checks that
// the length prefixes cover it exactly.
func countBytesElements(data []byte) (int, error) {
	n := 0
	for off := 0; off < len(data); n++ {
		if len(data)-off < 4 {
			return 0, fmt.Errorf("raw BYTES data ends inside the length of element %d", n)
		}
		l := int(binary.LittleEndian.Uint32(data[off:]))
		off += 4
		if l > len(data)-off {
			return 0, fmt.Errorf("raw BYTES element %d claims %d bytes, but only %d remain", n, l, len(data)-off)
		}
		off += l
	}
	return n, nil
}

// nextBytesElement splits the first BYTES element off raw data that
// countBytesElements accepted.
func nextBytesElement(data []byte) (elem, rest []byte) {
	l := int(binary.LittleEndian.Uint32(data))
	return data[4 : 4+l], data[4+l:]
}

// checkOutput checks that a tensor the backend returned is consistent, so
// that a client never receives data that does not fit its shape.
func checkOutput(t Tensor) error {
	count, size, err := tensorHeader("output", t.Name, t.Datatype, t.Shape)
	if err == nil {
		err = checkRaw("output "+strconv.Quote(t.Name), t.Datatype, t.Shape, count, size, t.Data)
	}
	if err != nil {
		return fmt.Errorf("backend returned an inconsistent output: %v", err) // not the client's fault: 500
	}
	return nil
}

// halfToFloat32 converts an IEEE 754 half-precision value.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0: // zero or subnormal: mant × 2⁻²⁴
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// bfloat16ToFloat32 converts a bfloat16 value: the upper half of a float32.
func bfloat16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// requirementsFrom reads infaas's requirements from request parameters:
// latency_ms, min_accuracy, max_cost, strict and explain. Other parameters
// are ignored, as the protocol lets clients send extensions. Values are Go
// values as either transport decodes them: json.Number, float64, int64,
// uint64, bool or string.
func requirementsFrom(params map[string]any) (Requirements, error) {
	var req Requirements
	var err error
	if v, ok := params["latency_ms"]; ok {
		if req.LatencyMs, err = numberParam("latency_ms", v, "a positive number of milliseconds"); err != nil {
			return req, err
		}
		if req.LatencyMs < 0 {
			return req, badRequirement("latency_ms", v, "a positive number of milliseconds")
		}
		if req.LatencyMs > maxLatencyMs {
			return req, fmt.Errorf("%w: latency_ms must be at most %d (one hour), got %s",
				controller.ErrBadRequirements, maxLatencyMs, describe(v))
		}
	}
	if v, ok := params["min_accuracy"]; ok {
		const want = "a percentage between 0 and 100"
		if req.MinAccuracy, err = numberParam("min_accuracy", v, want); err != nil {
			return req, err
		}
		if req.MinAccuracy < 0 || req.MinAccuracy > 100 {
			return req, badRequirement("min_accuracy", v, want)
		}
	}
	if v, ok := params["max_cost"]; ok {
		const want = "a non-negative cost in USD per 1,000 queries"
		if req.MaxCost, err = numberParam("max_cost", v, want); err != nil {
			return req, err
		}
		if req.MaxCost < 0 {
			return req, badRequirement("max_cost", v, want)
		}
	}
	if req.Strict, err = boolParam(params, "strict"); err != nil {
		return req, err
	}
	if req.Explain, err = boolParam(params, "explain"); err != nil {
		return req, err
	}
	return req, nil
}

// numberParam converts a numeric parameter value; anything else, and NaN or
// infinity, is an error that says what the parameter must be.
func numberParam(key string, v any, want string) (float64, error) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(x), 64); err != nil {
			return 0, badRequirement(key, v, want)
		}
	case float64:
		f = x
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case int:
		f = float64(x)
	default:
		return 0, badRequirement(key, v, want)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, badRequirement(key, v, want)
	}
	return f, nil
}

func boolParam(params map[string]any, key string) (bool, error) {
	v, ok := params[key]
	if !ok {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, badRequirement(key, v, "true or false")
	}
	return b, nil
}

func badRequirement(key string, v any, want string) error {
	return fmt.Errorf("%w: %s must be %s, got %s", controller.ErrBadRequirements, key, want, describe(v))
}

// describe writes a parameter value for an error message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "the string " + strconv.Quote(x)
	case json.Number:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool, int, int64, uint64:
		return fmt.Sprint(x)
	}
	return fmt.Sprintf("%T", v)
}
