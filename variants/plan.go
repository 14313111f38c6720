package variants

import (
	"sort"
)

// Precisions the generator produces.
const (
	FP32 = "fp32"
	INT8 = "int8"
)

// OptLevels are the ONNX Runtime graph optimisation levels a variant can be
// saved at (the original graph is the "disabled" level and is not kept:
// basic optimisation is never slower).
var OptLevels = []string{"basic", "extended", "all"}

// BatchSizes are the maximum batch sizes offered for a dynamic batch dimension.
var BatchSizes = []int{1, 4, 8, 16, 32}

// ThreadCounts returns intra-op thread counts for a worker with cores
// cores: powers of two below cores, and cores itself.
func ThreadCounts(cores int) []int {
	if cores < 1 {
		cores = 1
	}
	var out []int
	for t := 1; t < cores; t *= 2 {
		out = append(out, t)
	}
	return append(out, cores)
}

// MaxBatches returns the maximum batch sizes to offer: BatchSizes when the
// batch dimension is dynamic (fixed < 1), else only the fixed size.
func MaxBatches(fixed int64) []int {
	if fixed >= 1 {
		return []int{int(fixed)}
	}
	return append([]int(nil), BatchSizes...)
}

// Graph is one rewritten ONNX file: a precision at an optimisation level.
type Graph struct {
	Precision string
	OptLevel  string
}

// Graphs lists the graphs to derive: every optimisation level of fp32, and
// of int8 when quantisation applies.
func Graphs(int8OK bool) []Graph {
	var out []Graph
	precs := []string{FP32}
	if int8OK {
		precs = append(precs, INT8)
	}
	for _, p := range precs {
		for _, o := range OptLevels {
			out = append(out, Graph{Precision: p, OptLevel: o})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Precision < out[j].Precision })
	return out
}
