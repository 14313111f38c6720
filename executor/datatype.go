package executor

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"
)

// datatypes maps Open Inference Protocol datatype names to ONNX Runtime's
// element types and their sizes in bytes.
var datatypes = map[string]struct {
	ort  ort.TensorElementDataType
	size int
}{
	"BOOL":   {ort.TensorElementDataTypeBool, 1},
	"UINT8":  {ort.TensorElementDataTypeUint8, 1},
	"UINT16": {ort.TensorElementDataTypeUint16, 2},
	"UINT32": {ort.TensorElementDataTypeUint32, 4},
	"UINT64": {ort.TensorElementDataTypeUint64, 8},
	"INT8":   {ort.TensorElementDataTypeInt8, 1},
	"INT16":  {ort.TensorElementDataTypeInt16, 2},
	"INT32":  {ort.TensorElementDataTypeInt32, 4},
	"INT64":  {ort.TensorElementDataTypeInt64, 8},
	"FP16":   {ort.TensorElementDataTypeFloat16, 2},
	"FP32":   {ort.TensorElementDataTypeFloat, 4},
	"FP64":   {ort.TensorElementDataTypeDouble, 8},
	"BF16":   {ort.TensorElementDataTypeBFloat16, 2},
}

// ElementSize is the size in bytes of one element of an Open Inference
// Protocol datatype, or 0 for an unknown or variable-size one (BYTES).
func ElementSize(datatype string) int { return datatypes[datatype].size }

func toORT(datatype string) (ort.TensorElementDataType, error) {
	d, ok := datatypes[datatype]
	if !ok {
		return 0, fmt.Errorf("datatype %q is not supported", datatype)
	}
	return d.ort, nil
}

func fromORT(t ort.TensorElementDataType) string {
	for name, d := range datatypes {
		if d.ort == t {
			return name
		}
	}
	return "UNSUPPORTED(" + t.String() + ")"
}
