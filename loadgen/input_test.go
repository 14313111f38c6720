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
		{[]int64{7, 5}, "", "dimension 1 of a sample of the model's input shape [-1 -1 4] is 4"},
		{[]int64{1 << 24, 4}, "", "over 67108864 elements"},
	} {
		s, err := makeSynthetic(spec, true, 2, tt.want, rng)
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

// A model whose dimension 0 is not the batch — a scalar input, a
// recurrent state with its batch second, a fixed leading dimension —
// takes its tensors whole: every input at its declared shape, dynamic
// dimensions filled, a scalar one value; a batch above 1 is refused.
func TestSyntheticUnbatched(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := int64(catalog.DefaultDynamicDim)
	vad := []client.TensorMetadata{
		{Name: "input", Datatype: "FP32", Shape: []int64{-1, 64}},
		{Name: "state", Datatype: "FP32", Shape: []int64{2, -1, 32}},
		{Name: "sr", Datatype: "INT64", Shape: []int64{}},
	}
	outs := []client.TensorMetadata{{Name: "prob", Datatype: "FP32", Shape: []int64{-1, 1}}, {Name: "stateN", Datatype: "FP32", Shape: []int64{2, -1, 32}}}
	syn, err := makeInputs("vad", vad, outs, RequirementSet{Weight: 1, Model: "vad"}, rng)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([][]int64{{d, 64}, {2, d, 32}, {}})
	var got [][]int64
	for _, x := range syn {
		got = append(got, x.shape)
	}
	if fmt.Sprint(got) != want || syn[2].shape == nil || len(syn[2].vals) != 1 || len(syn[2].raw()) != 8 {
		t.Errorf("shapes %v (scalar: %d values), want %s and one", got, len(syn[2].vals), want)
	}
	if _, err := makeInputs("vad", vad, outs, RequirementSet{Weight: 1, Model: "vad", Batch: 4}, rng); err == nil ||
		!strings.Contains(err.Error(), "no batch dimension") || !strings.Contains(err.Error(), `"sr" INT64 []`) {
		t.Errorf("batch 4 of an unbatched model: %v", err)
	}
	// A fixed leading dimension: the shape given is the whole shape.
	img := []client.TensorMetadata{{Name: "image", Datatype: "FP32", Shape: []int64{3, -1, -1}}}
	syn, err = makeInputs("img", img, []client.TensorMetadata{{Name: "y", Datatype: "FP32", Shape: []int64{3, -1, -1}}},
		RequirementSet{Weight: 1, Model: "img", Shapes: map[string][]int64{"image": {3, 9, 11}}}, rng)
	if err != nil || fmt.Sprint(syn[0].shape) != "[3 9 11]" {
		t.Errorf("no batch dimension, shape given: %v, %v", syn, err)
	}
	// The batched case is unchanged: the batch first, then a sample.
	ids := []client.TensorMetadata{{Name: "ids", Datatype: "INT64", Shape: []int64{-1, -1}}}
	syn, err = makeInputs("txt", ids, []client.TensorMetadata{{Name: "y", Datatype: "FP32", Shape: []int64{-1, 2}}},
		RequirementSet{Weight: 1, Model: "txt", Batch: 3}, rng)
	if err != nil || fmt.Sprint(syn[0].shape) != fmt.Sprint([]int64{3, d}) {
		t.Errorf("batched: %v, %v", syn, err)
	}
}
