package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/infaas/infaas/api"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/controller"
	"github.com/infaas/infaas/registrar"
)

// DefaultServer is where the CLI looks for a server (Triton's HTTP port).
const DefaultServer = "http://127.0.0.1:8000"

// Error is an error answer from the server.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// Client talks to one infaas server.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for server, e.g. "http://127.0.0.1:8000" or "127.0.0.1:8000".
// The API key, when the environment holds one (INFAAS_API_KEY), goes with
// every request as Authorization: Bearer KEY.
func New(server string) *Client {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return (&Client{base: strings.TrimRight(server, "/"), http: &http.Client{}}).WithKey(os.Getenv(KeyEnv))
}

// KeyEnv is the environment variable New reads the API key from.
const KeyEnv = "INFAAS_API_KEY"

// WithKey makes the client send key as a bearer token ("" sends none).
func (c *Client) WithKey(key string) *Client {
	if key == "" {
		c.http.Transport = nil
		return c
	}
	c.http.Transport = bearer{key: key, next: http.DefaultTransport}
	return c
}

// bearer adds the API key to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

// Base is the server's base URL.
func (c *Client) Base() string { return c.base }

func (c *Client) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the infaas server at %s (start one with `infaas serve`, or point --server / INFAAS_SERVER at it): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return resp.StatusCode, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode answer to %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Registration describes a model to register.
type Registration struct {
	Name, Task, Dataset string
	// ModelPath is a local ONNX file; or ModelURL a bucket object the server fetches.
	ModelPath string
	ModelURL  string
	// ValidationDir holds inputs.idx and labels.idx.
	ValidationDir string
	Accuracy      *float64
	InputScale    float64
	// Overrides correct the tensor contract read from the model (batch
	// dimension, pinned shapes, profile shapes, class labels).
	Overrides *registrar.Overrides
	// Reprofile measures every variant afresh, even where the server's
	// profile cache holds the same graph's profile.
	Reprofile bool
}

// Register uploads a model and returns the registration's first status.
func (c *Client) Register(ctx context.Context, r Registration) (registrar.Status, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	field := func(k, v string) {
		if v != "" {
			_ = mw.WriteField(k, v)
		}
	}
	field("name", r.Name)
	field("task", r.Task)
	field("dataset", r.Dataset)
	field("model_url", r.ModelURL)
	if r.Reprofile {
		field("reprofile", "true")
	}
	if r.Accuracy != nil {
		field("accuracy", strconv.FormatFloat(*r.Accuracy, 'f', -1, 64))
	}
	if r.Overrides != nil {
		b, err := json.Marshal(r.Overrides)
		if err != nil {
			return registrar.Status{}, fmt.Errorf("encode overrides: %w", err)
		}
		field("config", string(b))
	}
	if r.InputScale != 0 {
		field("input_scale", strconv.FormatFloat(r.InputScale, 'g', -1, 64))
	}
	file := func(k, path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		w, err := mw.CreateFormFile(k, filepath.Base(path))
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if r.ModelPath != "" {
		if err := file("model", r.ModelPath); err != nil {
			return registrar.Status{}, fmt.Errorf("read model: %w", err)
		}
	}
	if r.ValidationDir != "" {
		if err := file("validation_inputs", filepath.Join(r.ValidationDir, "inputs.idx")); err != nil {
			return registrar.Status{}, fmt.Errorf("validation data (a directory with inputs.idx and labels.idx): %w", err)
		}
		if err := file("validation_labels", filepath.Join(r.ValidationDir, "labels.idx")); err != nil {
			return registrar.Status{}, fmt.Errorf("validation data (a directory with inputs.idx and labels.idx): %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return registrar.Status{}, err
	}
	var st registrar.Status
	_, err := c.do(ctx, http.MethodPost, "/v1/models", mw.FormDataContentType(), &buf, &st)
	return st, err
}

// Registration returns a registration's status.
func (c *Client) Registration(ctx context.Context, name string) (registrar.Status, error) {
	var st registrar.Status
	_, err := c.do(ctx, http.MethodGet, "/v1/registrations/"+url.PathEscape(name), "", nil, &st)
	return st, err
}

// Wait polls a registration until it is ready or failed, calling progress
// on each poll.
func (c *Client) Wait(ctx context.Context, name string, progress func(registrar.Status)) (registrar.Status, error) {
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := c.Registration(ctx, name)
		if err != nil {
			return st, err
		}
		if progress != nil {
			progress(st)
		}
		switch st.State {
		case registrar.StateReady:
			return st, nil
		case registrar.StateFailed:
			return st, errors.New(st.Error)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-t.C:
		}
	}
}

// Models lists use cases and architectures.
func (c *Client) Models(ctx context.Context) (api.Listing, error) {
	var l api.Listing
	_, err := c.do(ctx, http.MethodGet, "/v1/models", "", nil, &l)
	return l, err
}

// Variants lists an architecture's variants.
func (c *Client) Variants(ctx context.Context, arch string) ([]catalog.Variant, error) {
	var vs []catalog.Variant
	_, err := c.do(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(arch)+"/variants", "", nil, &vs)
	return vs, err
}

// Architecture returns one architecture.
func (c *Client) Architecture(ctx context.Context, name string) (catalog.Architecture, error) {
	var a catalog.Architecture
	_, err := c.do(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(name), "", nil, &a)
	return a, err
}

// Variant returns one variant.
func (c *Client) Variant(ctx context.Context, name string) (catalog.Variant, error) {
	var v catalog.Variant
	_, err := c.do(ctx, http.MethodGet, "/v1/variants/"+url.PathEscape(name), "", nil, &v)
	return v, err
}

// Catalog returns every architecture with its variants and their
// profiles, as the server registered them (what `infaas simulate --from`
// simulates).
func (c *Client) Catalog(ctx context.Context) ([]catalog.Architecture, []catalog.Variant, error) {
	l, err := c.Models(ctx)
	if err != nil {
		return nil, nil, err
	}
	var archs []catalog.Architecture
	var vs []catalog.Variant
	for _, a := range l.Architectures {
		arch, err := c.Architecture(ctx, a.Name)
		if err != nil {
			return nil, nil, err
		}
		avs, err := c.Variants(ctx, a.Name)
		if err != nil {
			return nil, nil, err
		}
		archs = append(archs, arch)
		vs = append(vs, avs...)
	}
	return archs, vs, nil
}

// Workers returns the workers the controller routes to: class, address,
// health, last report, memory, replicas with their statistics and health.
func (c *Client) Workers(ctx context.Context) ([]controller.WorkerInfo, error) {
	var ws []controller.WorkerInfo
	_, err := c.do(ctx, http.MethodGet, "/v1/workers", "", nil, &ws)
	return ws, err
}

// Delete removes an architecture, its variants, replicas and blobs.
func (c *Client) Delete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/models/"+url.PathEscape(name), "", nil, nil)
	return err
}
