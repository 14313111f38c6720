package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPutGetVerifyDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := []byte("an onnx model, honestly")
	d, err := r.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if d != Digest(data) {
		t.Fatalf("digest %s, want %s", d, Digest(data))
	}
	if d2, err := r.Put(ctx, data); err != nil || d2 != d {
		t.Fatalf("second put: %s, %v", d2, err)
	}
	got, err := r.Get(ctx, d)
	if err != nil || string(got) != string(data) {
		t.Fatalf("get: %q, %v", got, err)
	}
	if l, err := r.List(ctx); err != nil || len(l) != 1 || l[0] != d {
		t.Fatalf("list: %v, %v", l, err)
	}
	// Corrupt the stored file: the read must notice.
	if err := os.WriteFile(filepath.Join(dir, d), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered blob: %v, want ErrCorrupt", err)
	}
	if err := r.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, d); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := r.Get(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted blob: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, "sha256/../../etc/passwd"); err == nil {
		t.Fatal("malformed digest accepted")
	}
}

func TestFetch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := Fetch(ctx, "file://"+p, 100); err != nil || string(b) != "0123456789" {
		t.Fatalf("fetch: %q, %v", b, err)
	}
	if _, err := Fetch(ctx, "file://"+p, 5); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := Fetch(ctx, "file://"+dir+"/missing.onnx", 100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if _, err := Fetch(ctx, "file:///no/such/dir/m.onnx", 100); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := Fetch(ctx, "no-scheme.onnx", 100); err == nil {
		t.Fatal("URL without scheme accepted")
	}
}

func TestOpenUnreachable(t *testing.T) {
	if _, err := Open(context.Background(), "nosuchscheme://bucket"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unknown scheme: %v", err)
	}
}
