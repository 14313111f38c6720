package api

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendJSONResponse writes an $inference_response. Outputs for which
// binary reports true carry a binary_data_size parameter instead of data;
// their raw bytes, in order, are returned for the binary part of the body.
// Non-finite floats, which JSON cannot hold, are written as null.
func appendJSONResponse(dst []byte, resp *InferResponse, binary func(name string) bool) ([]byte, [][]byte, error) {
	for _, t := range resp.Outputs {
		if err := checkOutput(t); err != nil {
			return nil, nil, err
		}
	}
	dst = append(dst, `{"model_name":`...)
	dst = appendJSONString(dst, resp.Model)
	if resp.Version != "" {
		dst = append(dst, `,"model_version":`...)
		dst = appendJSONString(dst, resp.Version)
	}
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, resp.ID)
	if len(resp.Parameters) > 0 {
		dst = append(dst, `,"parameters":`...)
		dst = appendJSONParams(dst, resp.Parameters)
	}
	dst = append(dst, `,"outputs":[`...)
	var tail [][]byte
	for i, t := range resp.Outputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = appendJSONString(dst, t.Name)
		dst = append(dst, `,"datatype":`...)
		dst = appendJSONString(dst, t.Datatype)
		dst = append(dst, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, d, 10)
		}
		dst = append(dst, ']')
		if binary != nil && binary(t.Name) {
			dst = append(dst, `,"parameters":{"`+paramBinarySize+`":`...)
			dst = strconv.AppendInt(dst, int64(len(t.Data)), 10)
			dst = append(dst, "}}"...)
			tail = append(tail, t.Data)
			continue
		}
		dst = append(dst, `,"data":`...)
		dst = appendTensorData(dst, t)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...), tail, nil
}

// appendJSONParams writes parameters with sorted keys. A value that
// encoding/json cannot write (a NaN, say) is written as its fmt form.
func appendJSONParams(dst []byte, params map[string]any) []byte {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		v, err := json.Marshal(params[k])
		if err != nil {
			v, _ = json.Marshal(fmt.Sprint(params[k]))
		}
		dst = append(dst, v...)
	}
	return append(dst, '}')
}

// appendTensorData writes a tensor's elements as a flat JSON array. The
// tensor passed checkOutput.
func appendTensorData(dst []byte, t Tensor) []byte {
	d := t.Data
	dst = append(dst, '[')
	if t.Datatype == datatypeBytes {
		for first := true; len(d) > 0; first = false {
			if !first {
				dst = append(dst, ',')
			}
			var elem []byte
			elem, d = nextBytesElement(d)
			dst = appendJSONString(dst, elem)
		}
		return append(dst, ']')
	}
	size, _ := elementSize(t.Datatype)
	appendElem := jsonElementWriters[t.Datatype]
	for i := 0; i < len(d); i += size {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendElem(dst, d[i:i+size])
	}
	return append(dst, ']')
}

// jsonElementWriters write one little-endian element of each fixed-size
// datatype as a JSON value.
var jsonElementWriters = map[string]func(dst, e []byte) []byte{
	"BOOL":   func(dst, e []byte) []byte { return strconv.AppendBool(dst, e[0] != 0) },
	"UINT8":  func(dst, e []byte) []byte { return strconv.AppendUint(dst, uint64(e[0]), 10) },
	"UINT16": func(dst, e []byte) []byte { return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint16(e)), 10) },
	"UINT32": func(dst, e []byte) []byte { return strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(e)), 10) },
	"UINT64": func(dst, e []byte) []byte { return strconv.AppendUint(dst, binary.LittleEndian.Uint64(e), 10) },
	"INT8":   func(dst, e []byte) []byte { return strconv.AppendInt(dst, int64(int8(e[0])), 10) },
	"INT16": func(dst, e []byte) []byte {
		return strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(e))), 10)
	},
	"INT32": func(dst, e []byte) []byte {
		return strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(e))), 10)
	},
	"INT64": func(dst, e []byte) []byte { return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(e)), 10) },
	"FP16": func(dst, e []byte) []byte {
		return appendJSONFloat(dst, float64(halfToFloat32(binary.LittleEndian.Uint16(e))), 32)
	},
	"BF16": func(dst, e []byte) []byte {
		return appendJSONFloat(dst, float64(bfloat16ToFloat32(binary.LittleEndian.Uint16(e))), 32)
	},
	"FP32": func(dst, e []byte) []byte {
		return appendJSONFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(e))), 32)
	},
	"FP64": func(dst, e []byte) []byte {
		return appendJSONFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(e)), 64)
	},
}

func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + n
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
