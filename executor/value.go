package executor

import (
	"fmt"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// valueBytes copies an ORT-allocated output into out as raw bytes.
func valueBytes(v ort.Value, out []byte) ([]byte, []int64, error) {
	var raw []byte
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[float64]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[int64]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[int32]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[int16]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[int8]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[uint64]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[uint32]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[uint16]:
		raw = asBytes(t.GetData())
	case *ort.Tensor[uint8]:
		raw = t.GetData()
	case *ort.Tensor[bool]:
		raw = asBytes(t.GetData())
	case nil:
		return nil, nil, fmt.Errorf("ONNX Runtime returned no value")
	default:
		return nil, nil, fmt.Errorf("output of type %T is not supported", v)
	}
	out = append(out[:0], raw...)
	return out, []int64(v.GetShape()), nil
}

func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}
