package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	_ "gocloud.dev/blob/fileblob" // file:// buckets, the default
	_ "gocloud.dev/blob/memblob"  // mem:// buckets, for tests
)

// Sentinel errors.
var (
	ErrNotFound    = errors.New("object not found")
	ErrCorrupt     = errors.New("object does not match its digest")
	ErrUnreachable = errors.New("bucket unreachable")
	ErrTooLarge    = errors.New("object too large")
)

const prefix = "sha256/"

// Repository stores content-addressed blobs in one bucket.
type Repository struct {
	bucket *blob.Bucket
	url    string
}

// Open opens the bucket at rawURL. A plain path (no scheme) is a local
// directory, created if missing. The bucket must be reachable.
func Open(ctx context.Context, rawURL string) (*Repository, error) {
	u, err := BucketURL(rawURL)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(u, "file://") {
		dir := strings.TrimPrefix(u, "file://")
		if i := strings.IndexByte(dir, '?'); i >= 0 {
			dir = dir[:i]
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("model repository %s: %w", rawURL, err)
		}
	}
	b, err := openBucket(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("model repository: %w", err)
	}
	return &Repository{bucket: b, url: u}, nil
}

// BucketURL turns a plain directory path into a file:// URL and leaves
// URLs alone.
func BucketURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty bucket URL")
	}
	if strings.Contains(raw, "://") {
		return raw, nil
	}
	abs, err := filepath.Abs(raw)
	if err != nil {
		return "", err
	}
	return "file://" + filepath.ToSlash(abs) + "?create_dir=true&no_tmp_dir=true", nil
}

func openBucket(ctx context.Context, u string) (*blob.Bucket, error) {
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrUnreachable, redact(u), err)
	}
	ok, err := b.IsAccessible(ctx)
	if err != nil || !ok {
		b.Close()
		if err == nil {
			err = errors.New("not accessible")
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, redact(u), err)
	}
	return b, nil
}

// redact drops a URL's query and user info, which may hold credentials.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// URL is the bucket's URL.
func (r *Repository) URL() string { return redact(r.url) }

// Close closes the bucket.
func (r *Repository) Close() error { return r.bucket.Close() }

// Digest is the content address of data: "sha256/<hex>".
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return prefix + hex.EncodeToString(sum[:])
}

func validDigest(d string) error {
	h, ok := strings.CutPrefix(d, prefix)
	if !ok || len(h) != 64 {
		return fmt.Errorf("malformed digest %q", d)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("malformed digest %q", d)
	}
	return nil
}

// Put stores data and returns its digest. Storing the same content twice is
// a no-op. An interrupted Put leaves no object behind.
func (r *Repository) Put(ctx context.Context, data []byte) (string, error) {
	d := Digest(data)
	if ok, err := r.bucket.Exists(ctx, d); err == nil && ok {
		return d, nil
	}
	if err := r.bucket.WriteAll(ctx, d, data, &blob.WriterOptions{ContentType: "application/octet-stream"}); err != nil {
		return "", fmt.Errorf("put %s: %w", d, err)
	}
	return d, nil
}

// Get reads the object with digest d and verifies it.
func (r *Repository) Get(ctx context.Context, d string) ([]byte, error) {
	if err := validDigest(d); err != nil {
		return nil, err
	}
	data, err := r.bucket.ReadAll(ctx, d)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("get %s: %w", d, ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", d, err)
	}
	if got := Digest(data); got != d {
		return nil, fmt.Errorf("get %s: %w (content hashes to %s)", d, ErrCorrupt, got)
	}
	return data, nil
}

// Exists reports whether the object with digest d is stored.
func (r *Repository) Exists(ctx context.Context, d string) (bool, error) {
	return r.bucket.Exists(ctx, d)
}

// Delete removes the object with digest d; deleting a missing object is not an error.
func (r *Repository) Delete(ctx context.Context, d string) error {
	if err := validDigest(d); err != nil {
		return err
	}
	if err := r.bucket.Delete(ctx, d); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	return nil
}

// List returns every stored digest.
func (r *Repository) List(ctx context.Context) ([]string, error) {
	// A write in progress elsewhere can make a listing fail: the local
	// directory driver lists a blob's temporary file and then finds it
	// renamed away. Such a listing is started again (a few times).
	var err error
	for range 5 {
		var out []string
		if out, err = r.list(ctx); err == nil || gcerrors.Code(err) != gcerrors.NotFound {
			return out, err
		}
	}
	return nil, err
}

func (r *Repository) list(ctx context.Context) ([]string, error) {
	var out []string
	it := r.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		if validDigest(obj.Key) == nil {
			out = append(out, obj.Key)
		}
	}
}

// ErrForbidden marks an object URL the server will not read.
var ErrForbidden = errors.New("object URL not allowed")

// Fetch reads one object named by a full object URL, e.g.
// file:///models/a.onnx or s3://bucket/path/a.onnx?region=eu-west-1, up to
// limit bytes: it stops reading at limit + 1 bytes whatever the object's
// announced size, and when ctx ends. A file:// URL is read only when its
// path lies under one of fileRoots (directories the operator allows; none:
// every file:// URL is refused, before the path is looked at, so the
// answer never reveals whether a file exists) and names a regular file
// (not /dev/zero, a FIFO, a directory).
func Fetch(ctx context.Context, objectURL string, limit int64, fileRoots []string) ([]byte, error) {
	bucketURL, key, err := splitObjectURL(objectURL)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(bucketURL, "file://") {
		if err := allowedFile(strings.TrimPrefix(bucketURL, "file://")+key, fileRoots); err != nil {
			return nil, err
		}
	}
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, redact(objectURL), err)
	}
	defer b.Close()
	attrs, err := b.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%s: %w", redact(objectURL), ErrNotFound)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, redact(objectURL), err)
	}
	if limit > 0 && attrs.Size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLarge, redact(objectURL), attrs.Size, limit)
	}
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrUnreachable, redact(objectURL), err)
	}
	defer r.Close()
	var src io.Reader = r
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	data, err := io.ReadAll(src)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrUnreachable, redact(objectURL), err)
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s holds more than the limit of %d bytes", ErrTooLarge, redact(objectURL), limit)
	}
	return data, nil
}

// allowedFile checks a file:// path against the allowed roots, then that
// it is a regular file.
func allowedFile(path string, roots []string) error {
	clean := filepath.Clean(path)
	ok := false
	for _, root := range roots {
		root = filepath.Clean(root)
		if rel, err := filepath.Rel(root, clean); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			ok = true
			break
		}
	}
	if !ok {
		return fmt.Errorf("%w: file:// URLs are read only under the directories the operator allows (infaas serve --allow-file-root DIR); upload the file instead", ErrForbidden)
	}
	// Resolve links: a link under a root may point anywhere.
	real, err := filepath.EvalSymlinks(clean)
	if err != nil {
		return fmt.Errorf("file://%s: %w", clean, ErrNotFound)
	}
	if real != clean {
		return allowedFile(real, roots)
	}
	st, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("file://%s: %w", clean, ErrNotFound)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: file://%s is not a regular file", ErrForbidden, clean)
	}
	return nil
}

func splitObjectURL(raw string) (bucketURL, key string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", "", fmt.Errorf("%q is not an object URL (want e.g. file:///dir/model.onnx or s3://bucket/model.onnx)", raw)
	}
	if u.Scheme == "file" {
		dir, base := filepath.Split(u.Path)
		if base == "" {
			return "", "", fmt.Errorf("%q names a directory, not a file", raw)
		}
		return "file://" + dir, base, nil
	}
	key = strings.TrimPrefix(u.Path, "/")
	if key == "" {
		return "", "", fmt.Errorf("%q names a bucket, not an object", raw)
	}
	u.Path = ""
	return u.String(), key, nil
}

// storeIdentityKey names the object that records which metadata store
// the blobs belong to (outside the sha256/ prefix: List never sees it).
const storeIdentityKey = "store-identity"

// StoreIdentity returns the identity of the metadata store the blobs
// belong to, as SetStoreIdentity recorded it; "" when none is recorded.
func (r *Repository) StoreIdentity(ctx context.Context) (string, error) {
	b, err := r.bucket.ReadAll(ctx, storeIdentityKey)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the store identity: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SetStoreIdentity records the identity of the metadata store the blobs
// belong to.
func (r *Repository) SetStoreIdentity(ctx context.Context, id string) error {
	if err := r.bucket.WriteAll(ctx, storeIdentityKey, []byte(id+"\n"), nil); err != nil {
		return fmt.Errorf("record the store identity: %w", err)
	}
	return nil
}

// StoreIdentityObject is the name of the object holding the store
// identity, for messages telling an operator what to remove.
func (r *Repository) StoreIdentityObject() string { return r.URL() + " object " + storeIdentityKey }
