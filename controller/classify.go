package controller

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/infaas/infaas/inference"
)

// classify answers the Open Inference Protocol classification extension:
// the top n classes of each row of class scores t, as a BYTES tensor
// [rows, n] (or [n] for an unbatched model) of "score:index:label"
// ("score:index" without labels), best first, ties by index. A batched
// output's rows are its first dimension; an unbatched output is one row.
func classify(t inference.Tensor, n int, labels []string, batched bool) (inference.Tensor, error) {
	var scores []float64
	switch t.Datatype {
	case "FP32":
		for k := 0; k+4 <= len(t.Data); k += 4 {
			scores = append(scores, float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[k:]))))
		}
	case "FP64":
		for k := 0; k+8 <= len(t.Data); k += 8 {
			scores = append(scores, math.Float64frombits(binary.LittleEndian.Uint64(t.Data[k:])))
		}
	default:
		return t, fmt.Errorf("%w: classification needs class scores (FP32 or FP64); output %q is %s", ErrBadInput, t.Name, t.Datatype)
	}
	rows := 1
	if batched && len(t.Shape) > 0 {
		rows = int(t.Shape[0])
	}
	if rows == 0 || len(scores)%rows != 0 {
		return t, fmt.Errorf("%w: output %q of shape %v has no rows of class scores", ErrBadInput, t.Name, t.Shape)
	}
	classes := len(scores) / rows
	n = min(n, classes)
	out := inference.Tensor{Name: t.Name, Datatype: "BYTES", Shape: []int64{int64(rows), int64(n)}}
	if !batched {
		out.Shape = []int64{int64(n)}
	}
	idx := make([]int, classes)
	for r := range rows {
		row := scores[r*classes : (r+1)*classes]
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		for _, c := range idx[:n] {
			s := strconv.FormatFloat(row[c], 'g', 7, 64) + ":" + strconv.Itoa(c)
			if c < len(labels) {
				s += ":" + labels[c]
			}
			out.Data = binary.LittleEndian.AppendUint32(out.Data, uint32(len(s)))
			out.Data = append(out.Data, s...)
		}
	}
	return out, nil
}
