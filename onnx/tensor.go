package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
)

// NumElements returns the number of elements of a tensor with the given dims:
// 1 for a scalar (no dims). Negative dims are an error.
func NumElements(dims []int64) (int64, error) {
	n := int64(1)
	for i, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("dim %d is negative (%d)", i, d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("dims %v overflow int64", dims)
		}
		n *= d
	}
	return n, nil
}

// ElemSize returns the size in bytes of one element of a fixed-width data type,
// or 0 for types without one (STRING, sub-byte types, UNDEFINED).
func ElemSize(dt TensorProto_DataType) int {
	switch dt {
	case TensorProto_UINT8, TensorProto_INT8, TensorProto_BOOL,
		TensorProto_FLOAT8E4M3FN, TensorProto_FLOAT8E4M3FNUZ,
		TensorProto_FLOAT8E5M2, TensorProto_FLOAT8E5M2FNUZ, TensorProto_FLOAT8E8M0:
		return 1
	case TensorProto_UINT16, TensorProto_INT16, TensorProto_FLOAT16, TensorProto_BFLOAT16:
		return 2
	case TensorProto_FLOAT, TensorProto_INT32, TensorProto_UINT32:
		return 4
	case TensorProto_INT64, TensorProto_UINT64, TensorProto_DOUBLE, TensorProto_COMPLEX64:
		return 8
	case TensorProto_COMPLEX128:
		return 16
	default:
		return 0
	}
}

// DataType returns the tensor's element type as the enum.
func DataType(t *TensorProto) TensorProto_DataType {
	return TensorProto_DataType(t.GetDataType())
}

// IsExternal reports whether the tensor's data lives outside the model file.
func IsExternal(t *TensorProto) bool {
	return t.GetDataLocation() == TensorProto_EXTERNAL
}

// DataBytes returns how many bytes the tensor's elements occupy when stored
// densely (elements × element size); 0 for types without a fixed width.
func DataBytes(t *TensorProto) int64 {
	n, err := NumElements(t.GetDims())
	if err != nil {
		return 0
	}
	return n * int64(ElemSize(DataType(t)))
}

// TensorFloats returns the elements of a FLOAT tensor, read from raw_data
// (little-endian) or float_data, whichever holds them.
func TensorFloats(t *TensorProto) ([]float32, error) {
	if t == nil {
		return nil, fmt.Errorf("tensor is nil")
	}
	if dt := DataType(t); dt != TensorProto_FLOAT {
		return nil, fmt.Errorf("tensor %q has data type %s, want FLOAT", t.GetName(), dt)
	}
	if IsExternal(t) {
		return nil, fmt.Errorf("tensor %q stores its data externally, which is not supported", t.GetName())
	}
	n, err := NumElements(t.GetDims())
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.GetName(), err)
	}
	if raw := t.GetRawData(); len(raw) > 0 || (n == 0 && len(t.GetFloatData()) == 0) {
		if int64(len(raw)) != 4*n {
			return nil, fmt.Errorf("tensor %q has %d raw bytes, want %d for dims %v", t.GetName(), len(raw), 4*n, t.GetDims())
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	}
	fd := t.GetFloatData()
	if int64(len(fd)) != n {
		return nil, fmt.Errorf("tensor %q has %d float_data values, want %d for dims %v", t.GetName(), len(fd), n, t.GetDims())
	}
	return append([]float32(nil), fd...), nil
}

// NewFloatTensor returns a FLOAT tensor (an initializer, say) holding data in
// raw_data. It panics if len(data) does not match dims, a programming error.
func NewFloatTensor(name string, dims []int64, data []float32) *TensorProto {
	mustMatch(name, dims, len(data))
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return newRawTensor(name, TensorProto_FLOAT, dims, raw)
}

// NewInt8Tensor returns an INT8 tensor holding data in raw_data. It panics if
// len(data) does not match dims.
func NewInt8Tensor(name string, dims []int64, data []int8) *TensorProto {
	mustMatch(name, dims, len(data))
	raw := make([]byte, len(data))
	for i, v := range data {
		raw[i] = byte(v)
	}
	return newRawTensor(name, TensorProto_INT8, dims, raw)
}

// NewUint8Tensor returns a UINT8 tensor holding data in raw_data. It panics if
// len(data) does not match dims.
func NewUint8Tensor(name string, dims []int64, data []uint8) *TensorProto {
	mustMatch(name, dims, len(data))
	return newRawTensor(name, TensorProto_UINT8, dims, append([]byte(nil), data...))
}

// NewInt64Tensor returns an INT64 tensor (shapes, axes) holding data in
// raw_data. It panics if len(data) does not match dims.
func NewInt64Tensor(name string, dims []int64, data []int64) *TensorProto {
	mustMatch(name, dims, len(data))
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return newRawTensor(name, TensorProto_INT64, dims, raw)
}

func newRawTensor(name string, dt TensorProto_DataType, dims []int64, raw []byte) *TensorProto {
	return &TensorProto{
		Name:     name,
		DataType: int32(dt),
		Dims:     append([]int64(nil), dims...),
		RawData:  raw,
	}
}

func mustMatch(name string, dims []int64, n int) {
	want, err := NumElements(dims)
	if err != nil {
		panic(fmt.Sprintf("onnx: tensor %q: %v", name, err))
	}
	if want != int64(n) {
		panic(fmt.Sprintf("onnx: tensor %q: %d values for dims %v, want %d", name, n, dims, want))
	}
}
