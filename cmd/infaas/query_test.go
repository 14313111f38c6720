package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readInput: a JSON tensor's own shape fills the model's dynamic
// dimensions; for a model without any, the values are whole samples
// whatever shape the file says; a shape that cannot fit is refused.
func TestReadInput(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		p := filepath.Join(dir, fmt.Sprintf("t%d.json", len(body)))
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		body  string
		model []int64
		shape string
		err   string
	}{
		{`{"shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}`, []int64{-1, -1}, "[2 3]", ""},
		{`{"shape": [6], "data": [1, 2, 3, 4, 5, 6]}`, []int64{-1, 1, 3}, "[2 1 3]", ""},
		{`{"data": [1, 2, 3]}`, []int64{-1, 3}, "[1 3]", ""},
		{`{"shape": [2, 3, 1], "data": [1, 2, 3, 4, 5, 6]}`, []int64{-1, -1}, "", "has 3 dimensions"},
		{`{"shape": [2, 4], "data": [1, 2, 3, 4, 5, 6]}`, []int64{-1, -1}, "", "holds 8 values; its data has 6"},
		{`{"shape": [1, 2], "data": [1, 2]}`, []int64{-1, 3, -1}, "", "has 2 dimensions"},
		{`{"data": [1, 2]}`, []int64{-1, -1}, "", "dynamic dimensions"},
		{`{"shape": [], "data": [16000]}`, []int64{}, "[]", ""},
		{`{"data": [16000]}`, []int64{}, "", "is a scalar"},
	} {
		in, err := readInput(file(tc.body), tc.model, 0, 1)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s for %v: %v, want an error saying %q", tc.body, tc.model, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s for %v: %v", tc.body, tc.model, err)
		case fmt.Sprint(in.Shape) != tc.shape:
			t.Errorf("%s for %v: shape %v, want %s", tc.body, tc.model, in.Shape, tc.shape)
		}
	}
}
