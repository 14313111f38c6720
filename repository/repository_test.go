package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	roots := []string{dir}
	if b, err := Fetch(ctx, "file://"+p, 100, roots); err != nil || string(b) != "0123456789" {
		t.Fatalf("fetch: %q, %v", b, err)
	}
	if _, err := Fetch(ctx, "file://"+p, 5, roots); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := Fetch(ctx, "file://"+dir+"/missing.onnx", 100, roots); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if _, err := Fetch(ctx, "no-scheme.onnx", 100, roots); err == nil {
		t.Fatal("URL without scheme accepted")
	}
	// Outside the allowed roots, an existing file and a missing one get
	// the same refusal: the answer says nothing about the file system.
	other := t.TempDir()
	secret := filepath.Join(other, "secret.onnx")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, e1 := Fetch(ctx, "file://"+secret, 100, roots)
	_, e2 := Fetch(ctx, "file://"+other+"/nothing.onnx", 100, roots)
	if !errors.Is(e1, ErrForbidden) || !errors.Is(e2, ErrForbidden) || e1.Error() != e2.Error() {
		t.Fatalf("outside the roots: %v / %v", e1, e2)
	}
	if _, err := Fetch(ctx, "file://"+p, 100, nil); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "--allow-file-root") {
		t.Fatalf("no roots: %v", err)
	}
	if _, err := Fetch(ctx, "file://"+dir+"/../"+filepath.Base(other)+"/secret.onnx", 100, roots); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a path climbing out of the root: %v", err)
	}
	// A link under the root that points outside it is refused.
	link := filepath.Join(dir, "link.onnx")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(ctx, "file://"+link, 100, roots); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a link out of the root: %v", err)
	}
	// A device that never ends is refused before anything is read.
	if _, err := Fetch(ctx, "file:///dev/zero", 1<<30, []string{"/dev"}); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("/dev/zero: %v", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	if _, err := Open(context.Background(), "nosuchscheme://bucket"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unknown scheme: %v", err)
	}
}
