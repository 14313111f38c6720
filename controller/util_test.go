package controller

import (
	"encoding/binary"
	"math"
)

func le32(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
