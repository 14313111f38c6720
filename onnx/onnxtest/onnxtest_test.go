package onnxtest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadIDX(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.idx")
	data := []byte{0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dims, got := ReadIDX(t, path)
	if len(dims) != 2 || dims[0] != 2 || dims[1] != 3 || len(got) != 6 || got[5] != 6 {
		t.Fatalf("ReadIDX = %v, %v", dims, got)
	}
}

func TestInitORTLoadsLibrary(t *testing.T) {
	InitORT(t)
}
