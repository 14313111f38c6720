package variants

import (
	"fmt"
	"math"
)

// int8Max is the symmetric int8 range: weights map to [-127, 127] so that
// zero is exactly representable and the range is the same on both sides.
const int8Max = 127

// symmetricPerColumn quantises a row-major [k, n] float32 matrix to int8 with
// one scale per column (per output channel) and zero point 0:
// w[i][j] ≈ q[i][j] * scales[j]. An all-zero column gets scale 1.
func symmetricPerColumn(w []float32, k, n int) (q []int8, scales []float32, err error) {
	if len(w) != k*n {
		return nil, nil, fmt.Errorf("matrix has %d values, want %d×%d", len(w), k, n)
	}
	maxAbs := make([]float64, n)
	for i := 0; i < k; i++ {
		row := w[i*n : (i+1)*n]
		for j, v := range row {
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, nil, fmt.Errorf("value at [%d, %d] is %v", i, j, v)
			}
			maxAbs[j] = math.Max(maxAbs[j], math.Abs(f))
		}
	}
	scales = make([]float32, n)
	for j, m := range maxAbs {
		scales[j] = 1
		if m > 0 {
			scales[j] = float32(m / int8Max)
		}
	}
	q = make([]int8, len(w))
	for i := 0; i < k; i++ {
		for j := 0; j < n; j++ {
			v := math.RoundToEven(float64(w[i*n+j]) / float64(scales[j]))
			q[i*n+j] = int8(max(-int8Max, min(int8Max, v)))
		}
	}
	return q, scales, nil
}

// transpose returns the row-major transpose of a row-major [rows, cols] matrix.
func transpose(w []float32, rows, cols int) []float32 {
	out := make([]float32, len(w))
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			out[j*rows+i] = w[i*cols+j]
		}
	}
	return out
}

// symmetricPerRow quantises a row-major [m, k] float32 matrix to int8 with
// one scale per row and zero point 0: w[i][j] ≈ q[i][j] * scales[i]. A Conv
// weight [M, C/group, k…] is such a matrix with one row per output channel.
// An all-zero row gets scale 1.
func symmetricPerRow(w []float32, m, k int) (q []int8, scales []float32, err error) {
	if m < 0 || k < 0 || len(w) != m*k {
		return nil, nil, fmt.Errorf("matrix has %d values, want %d×%d", len(w), m, k)
	}
	scales = make([]float32, m)
	q = make([]int8, len(w))
	for i := 0; i < m; i++ {
		row := w[i*k : (i+1)*k]
		var maxAbs float64
		for j, v := range row {
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, nil, fmt.Errorf("value at [%d, %d] is %v", i, j, v)
			}
			maxAbs = math.Max(maxAbs, math.Abs(f))
		}
		scales[i] = 1
		if maxAbs > 0 {
			scales[i] = float32(maxAbs / int8Max)
		}
		for j, v := range row {
			r := math.RoundToEven(float64(v) / float64(scales[i]))
			q[i*k+j] = int8(max(-int8Max, min(int8Max, r)))
		}
	}
	return q, scales, nil
}
