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
		Input: catalog.TensorSpec{Name: "pixels", DataType: "UINT8", Shape: []int64{-1, 1, 28, 28}},
	}
	for _, tc := range []struct {
		name     string
		edit     func(u *catalog.UseCase)
		conflict bool
		mention  string
	}{
		{"identical", func(*catalog.UseCase) {}, false, ""},
		{"other tensor name", func(u *catalog.UseCase) { u.Input.Name = "x" }, false, ""},
		{"fixed batch", func(u *catalog.UseCase) { u.Input.Shape = []int64{8, 1, 28, 28} }, false, ""},
		{"datatype", func(u *catalog.UseCase) { u.Input.DataType = "FP32" }, true, "FP32"},
		{"sample shape", func(u *catalog.UseCase) { u.Input.Shape = []int64{-1, 784} }, true, "[784]"},
		{"dynamic sample dimension", func(u *catalog.UseCase) { u.Input.Shape = []int64{-1, 1, -1, 28} }, true, "[1 -1 28]"},
		{"classes", func(u *catalog.UseCase) { u.Classes = 26 }, true, "26 classes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proposed := stored
			proposed.Input.Shape = append([]int64(nil), stored.Input.Shape...)
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
