package validation

import (
	"errors"
	"strings"
	"testing"

	"github.com/infaas/infaas/catalog"
)

func TestParseIDX(t *testing.T) {
	good := EncodeIDXUint8([]int{2, 3}, []byte{1, 2, 3, 4, 5, 6})
	a, err := ParseIDX(good)
	if err != nil || len(a.Dims) != 2 || a.Values[5] != 6 {
		t.Fatalf("%+v, %v", a, err)
	}
	for name, data := range map[string][]byte{
		"empty":            nil,
		"bad magic":        {1, 0, 8, 1, 0, 0, 0, 1, 0},
		"unknown type":     {0, 0, 0x42, 1, 0, 0, 0, 1, 0},
		"truncated header": {0, 0, 8, 2, 0, 0, 0, 1},
		"short body":       good[:len(good)-1],
		"long body":        append(append([]byte{}, good...), 7),
		"zero dimension":   {0, 0, 8, 1, 0, 0, 0, 0},
		"absurd size":      {0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := ParseIDX(data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func TestSetCheck(t *testing.T) {
	in := catalog.TensorSpec{Name: "input", DataType: "FP32", Shape: []int64{-1, 1, 2, 2}}
	out := catalog.TensorSpec{Name: "logits", DataType: "FP32", Shape: []int64{-1, 3}}
	s, err := Load(EncodeIDXUint8([]int{2, 2, 2}, make([]byte, 8)), EncodeIDXUint8([]int{2}, []byte{0, 2}))
	if err != nil {
		t.Fatal(err)
	}
	contract := func(in, out catalog.TensorSpec) catalog.Contract {
		return catalog.Contract{Batched: true, Inputs: []catalog.TensorSpec{in}, Outputs: []catalog.TensorSpec{out}}
	}
	if err := s.Check(contract(in, out)); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(contract(in, catalog.TensorSpec{Name: "logits", DataType: "FP32", Shape: []int64{-1, 2}})); err == nil || !strings.Contains(err.Error(), "label 2 of sample 1") {
		t.Fatalf("labels past the classes: %v", err)
	}
	if err := s.Check(contract(catalog.TensorSpec{Name: "input", DataType: "FP32", Shape: []int64{-1, 5}}, out)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong sample size: %v", err)
	}
	two := contract(in, out)
	two.Inputs = append(two.Inputs, catalog.TensorSpec{Name: "mask", DataType: "INT64", Shape: []int64{-1, 4}})
	if err := s.Check(two); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "declare an accuracy") {
		t.Fatalf("two inputs: %v", err)
	}
	if _, err := Load(EncodeIDXUint8([]int{2, 2}, make([]byte, 4)), EncodeIDXUint8([]int{3}, []byte{0, 1, 2})); !errors.Is(err, ErrMismatch) {
		t.Fatalf("count mismatch: %v", err)
	}
	if got := s.FP32(0.5); len(got) != 32 {
		t.Fatalf("FP32: %d bytes", len(got))
	}
}
