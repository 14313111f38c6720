package validation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrFormat is returned for data that is not a well-formed IDX file.
var ErrFormat = errors.New("not a valid IDX file")

// IDX element types (the third byte of the magic number).
const (
	idxUint8   = 0x08
	idxInt8    = 0x09
	idxInt16   = 0x0B
	idxInt32   = 0x0C
	idxFloat32 = 0x0D
	idxFloat64 = 0x0E
)

// Array is a decoded IDX file: its dimensions and its values as float64.
type Array struct {
	Dims   []int
	Values []float64
}

// maxElements bounds what a header may claim, so a hostile header cannot
// make us allocate without limit.
const maxElements = 1 << 28

// ParseIDX decodes an IDX file (big-endian; magic 0,0,type,ndims).
func ParseIDX(data []byte) (Array, error) {
	if len(data) < 4 || data[0] != 0 || data[1] != 0 {
		return Array{}, fmt.Errorf("%w: bad magic number", ErrFormat)
	}
	typ, nd := data[2], int(data[3])
	var size int
	switch typ {
	case idxUint8, idxInt8:
		size = 1
	case idxInt16:
		size = 2
	case idxInt32, idxFloat32:
		size = 4
	case idxFloat64:
		size = 8
	default:
		return Array{}, fmt.Errorf("%w: unknown element type 0x%02x", ErrFormat, typ)
	}
	if nd == 0 || len(data) < 4+4*nd {
		return Array{}, fmt.Errorf("%w: truncated header", ErrFormat)
	}
	dims := make([]int, nd)
	n := 1
	for i := range dims {
		d := int(binary.BigEndian.Uint32(data[4+4*i:]))
		if d == 0 || n > maxElements/d {
			return Array{}, fmt.Errorf("%w: dimension %d is %d", ErrFormat, i, d)
		}
		dims[i] = d
		n *= d
	}
	body := data[4+4*nd:]
	if len(body) != n*size {
		return Array{}, fmt.Errorf("%w: header promises %d values (%d bytes) but the file holds %d bytes", ErrFormat, n, n*size, len(body))
	}
	vals := make([]float64, n)
	for i := range vals {
		b := body[i*size:]
		switch typ {
		case idxUint8:
			vals[i] = float64(b[0])
		case idxInt8:
			vals[i] = float64(int8(b[0]))
		case idxInt16:
			vals[i] = float64(int16(binary.BigEndian.Uint16(b)))
		case idxInt32:
			vals[i] = float64(int32(binary.BigEndian.Uint32(b)))
		case idxFloat32:
			vals[i] = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
		case idxFloat64:
			vals[i] = math.Float64frombits(binary.BigEndian.Uint64(b))
		}
	}
	return Array{Dims: dims, Values: vals}, nil
}

// EncodeIDXUint8 writes values as an IDX ubyte file with the given dims.
func EncodeIDXUint8(dims []int, values []byte) []byte {
	out := []byte{0, 0, idxUint8, byte(len(dims))}
	for _, d := range dims {
		out = binary.BigEndian.AppendUint32(out, uint32(d))
	}
	return append(out, values...)
}
