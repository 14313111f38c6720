package controller

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/infaas/infaas/inference"
)

func scoresTensor(shape []int64, v ...float32) inference.Tensor {
	t := inference.Tensor{Name: "logits", Datatype: "FP32", Shape: shape}
	for _, x := range v {
		t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(x))
	}
	return t
}

func bytesElements(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	for len(data) > 0 {
		n := int(binary.LittleEndian.Uint32(data))
		out = append(out, string(data[4:4+n]))
		data = data[4+n:]
	}
	return out
}

func TestClassify(t *testing.T) {
	in := scoresTensor([]int64{2, 3}, 0.5, 2, -1, 3, 3, 0.25)
	got, err := classify(in, 2, []string{"cat", "dog", "eel"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Datatype != "BYTES" || !slices.Equal(got.Shape, []int64{2, 2}) {
		t.Fatalf("tensor %s %v", got.Datatype, got.Shape)
	}
	// Best first, ties by index.
	want := []string{"2:1:dog", "0.5:0:cat", "3:0:cat", "3:1:dog"}
	if e := bytesElements(t, got.Data); !slices.Equal(e, want) {
		t.Fatalf("elements %q, want %q", e, want)
	}
	// Unbatched, more classes asked than there are, no labels.
	got, err = classify(scoresTensor([]int64{3}, 1, 3, 2), 5, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if e := bytesElements(t, got.Data); !slices.Equal(got.Shape, []int64{3}) || !slices.Equal(e, []string{"3:1", "2:2", "1:0"}) {
		t.Fatalf("unbatched: %v %q", got.Shape, e)
	}
	if _, err := classify(inference.Tensor{Name: "label", Datatype: "INT64", Shape: []int64{1}, Data: make([]byte, 8)}, 1, nil, true); !errors.Is(err, ErrBadInput) {
		t.Fatalf("INT64 scores: %v", err)
	}
}

func TestStatsBook(t *testing.T) {
	var b statsBook
	at := time.Unix(100, 0)
	b.served("v", at, 2, 8, 3*time.Millisecond, time.Millisecond, 2*time.Millisecond)
	b.served("v", at, 1, 1, 2*time.Millisecond, 0, time.Millisecond)
	b.served("v", at, 1, 8, 2*time.Millisecond, 0, time.Millisecond)
	b.failed("v", time.Millisecond)
	s := b.entry("v").s
	if s.InferenceCount != 4 || s.ExecutionCount != 3 || s.InferenceStats.Success.Count != 3 || s.InferenceStats.Success.Ns != 7e6 ||
		s.InferenceStats.Fail.Count != 1 || s.LastInference != 100_000 {
		t.Fatalf("stats %+v", s)
	}
	if len(s.BatchStats) != 2 || s.BatchStats[0].BatchSize != 1 || s.BatchStats[1].BatchSize != 8 || s.BatchStats[1].ComputeInfer.Count != 2 {
		t.Fatalf("batch stats %+v", s.BatchStats)
	}
}
