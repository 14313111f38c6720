package metadata_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/metadata"
)

func TestCheckInputContract(t *testing.T) {
	stored := catalog.UseCase{
		Task: "classification", Dataset: "mnist", Classes: 10,
		Contract: catalog.Contract{Batched: true,
			Inputs:  []catalog.TensorSpec{{Name: "pixels", DataType: "UINT8", Shape: []int64{-1, 1, 28, 28}}},
			Outputs: []catalog.TensorSpec{{Name: "scores", DataType: "FP32", Shape: []int64{-1, 10}}}},
	}
	for _, tc := range []struct {
		name     string
		edit     func(u *catalog.UseCase)
		conflict bool
		mention  string
	}{
		{"identical", func(*catalog.UseCase) {}, false, ""},
		{"other tensor name", func(u *catalog.UseCase) { u.Inputs[0].Name = "x" }, false, ""},
		{"fixed batch", func(u *catalog.UseCase) { u.Inputs[0].Shape = []int64{8, 1, 28, 28} }, false, ""},
		{"datatype", func(u *catalog.UseCase) { u.Inputs[0].DataType = "FP32" }, true, "FP32"},
		{"sample shape", func(u *catalog.UseCase) { u.Inputs[0].Shape = []int64{-1, 784} }, true, "[batch, 784]"},
		{"dynamic sample dimension", func(u *catalog.UseCase) { u.Inputs[0].Shape = []int64{-1, 1, -1, 28} }, true, "[batch, 1, -1, 28]"},
		{"classes", func(u *catalog.UseCase) { u.Classes = 26 }, true, "26"},
		{"another input", func(u *catalog.UseCase) {
			u.Inputs = append(u.Inputs, catalog.TensorSpec{Name: "mask", DataType: "INT64", Shape: []int64{-1, 4}})
		}, true, `against 2 ("pixels", "mask")`},
		{"unbatched", func(u *catalog.UseCase) { u.Batched = false }, true, "batch dimension"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proposed := stored
			proposed.Inputs = []catalog.TensorSpec{stored.Inputs[0]}
			proposed.Inputs[0].Shape = append([]int64(nil), stored.Inputs[0].Shape...)
			tc.edit(&proposed)
			err := metadata.CheckInputContract(stored, proposed)
			if got := errors.Is(err, metadata.ErrConflict); got != tc.conflict {
				t.Fatalf("CheckInputContract = %v; want conflict %v", err, tc.conflict)
			}
			if tc.conflict && (!strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), stored.ID())) {
				t.Fatalf("error %q should name the use case and mention %q", err, tc.mention)
			}
		})
	}
}
