package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
)

// Dynamic dimensions of a sample take the set's shape, or the profiler's
// default size; a shape that disagrees with the model is refused with
// what to change.
func TestSyntheticDynamicDims(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	spec := client.TensorMetadata{Name: "ids", Datatype: "INT64", Shape: []int64{-1, -1, 4}}
	for _, tt := range []struct {
		want  []int64
		shape string
		err   string
	}{
		{nil, fmt.Sprint([]int64{2, catalog.DefaultDynamicDim, 4}), ""},
		{[]int64{7, 4}, "[2 7 4]", ""},
		{[]int64{7}, "", "has 2 dimensions; the shape given, [7], has 1"},
		{[]int64{7, 5}, "", "dimension 1 of a sample is 4"},
		{[]int64{1 << 24, 4}, "", "over 67108864 elements"},
	} {
		s, err := makeSynthetic(spec, 2, tt.want, rng)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("shape %v: %v, want an error saying %q", tt.want, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("shape %v: %v", tt.want, err)
		}
		if got := fmt.Sprint(s.shape); got != tt.shape {
			t.Errorf("shape %v: sent %s, want %s", tt.want, got, tt.shape)
		}
		n := int64(1)
		for _, d := range s.shape {
			n *= d
		}
		if int64(len(s.vals)) != n || int64(len(s.raw())) != 8*n {
			t.Errorf("shape %v: %d values, %d raw bytes, want %d and %d", s.shape, len(s.vals), len(s.raw()), n, 8*n)
		}
	}
}
