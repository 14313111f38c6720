package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infaas/infaas/registrar"
)

// The public server's timeouts, as cmd/infaas serve sets them (its default
// --http-read-timeout included). The tests here serve the real handlers
// under them so that a slow client meets what it would meet in production.
const (
	serveReadHeaderTimeout = 10 * time.Second
	serveReadTimeout       = 5 * time.Minute
	serveIdleTimeout       = 2 * time.Minute
	// serveMaxInferBody is the inference body limit cmd/infaas serve
	// passes to RegisterInference.
	serveMaxInferBody = 64 << 20
)

// countingListener hands out connections that count the bytes the server
// reads from them: what the server pulled off the socket, headers and
// framing included, whatever the client managed to push into the kernel's
// buffers besides.
type countingListener struct {
	net.Listener
	read atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// Embedding the *net.TCPConn keeps CloseWrite, which net/http uses to
	// close a refused request's connection gracefully.
	return &countingConn{TCPConn: c.(*net.TCPConn), read: &l.read}, nil
}

type countingConn struct {
	*net.TCPConn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// startServed serves h on a loopback port with the public server's timeouts
// and counts the bytes it reads.
func startServed(tb testing.TB, h http.Handler) (*httptest.Server, *countingListener) {
	tb.Helper()
	srv := httptest.NewUnstartedServer(h)
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.Config.ReadHeaderTimeout = serveReadHeaderTimeout
	srv.Config.ReadTimeout = serveReadTimeout
	srv.Config.IdleTimeout = serveIdleTimeout
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv, cl
}

// acceptingRegistrar takes every registration and keeps nothing of it, so
// that an upload's memory is the API's alone.
type acceptingRegistrar struct{ submitted atomic.Int64 }

func (r *acceptingRegistrar) Submit(ctx context.Context, req registrar.Request) (registrar.Status, error) {
	r.submitted.Add(1)
	return registrar.Status{Name: req.Name, State: registrar.StateQueued}, nil
}

func (r *acceptingRegistrar) Status(ctx context.Context, name string) (registrar.Status, error) {
	return registrar.Status{}, fmt.Errorf("registration %q: %w", name, registrar.ErrNotFound)
}

func (r *acceptingRegistrar) Jobs() []registrar.Status { return nil }

func (r *acceptingRegistrar) Delete(ctx context.Context, name string) error { return nil }

// uploadBoundary separates the parts of the test uploads.
const uploadBoundary = "infaas-test-boundary"

// uploadContentType is the Content-Type of the test uploads.
const uploadContentType = "multipart/form-data; boundary=" + uploadBoundary

// modelPartHead opens an upload whose model file follows.
const modelPartHead = "--" + uploadBoundary + "\r\n" +
	`Content-Disposition: form-data; name="model"; filename="model.onnx"` + "\r\n" +
	"Content-Type: application/octet-stream\r\n\r\n"

// uploadTail closes the model part and the upload.
const uploadTail = "\r\n--" + uploadBoundary + "--\r\n"

// junk is what the test clients stream: no boundary, not JSON. Clients
// share it read-only, so streaming allocates nothing per write.
var junk = []byte(strings.Repeat("x", 64<<10))

// errAnswered ends a streamed body once the server has answered.
var errAnswered = errors.New("the server answered")

// streamChunked posts prefix and then junk, chunked (no Content-Length),
// until the server answers or limit bytes have gone. It returns the answer
// and how many body bytes the client handed to its transport.
func streamChunked(t *testing.T, client *http.Client, url, contentType, prefix string, limit int64) (int, string, int64) {
	t.Helper()
	pr, pw := io.Pipe()
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := io.WriteString(pw, prefix)
		sent.Add(int64(n))
		for err == nil && sent.Load() < limit {
			n, err = pw.Write(junk)
			sent.Add(int64(n))
		}
		pw.Close()
	}()
	req, err := http.NewRequest("POST", url, pr) // a pipe has no length: chunked
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	res, err := client.Do(req)
	pw.CloseWithError(errAnswered)
	<-done
	if err != nil {
		t.Fatalf("after %d bytes: %v", sent.Load(), err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), sent.Load()
}

// TestChunkedOversizedBodyRefusedWhileArriving streams 64 MiB, chunked, at
// servers that take 1 MiB: the refusal must come once the limit is passed,
// with the server having read about the limit, not once the client is done.
// The bytes are counted where the server reads its socket; the client's
// own count is larger by what the kernel buffers hold.
func TestChunkedOversizedBodyRefusedWhileArriving(t *testing.T) {
	noLeaks(t)
	const (
		limit  = 1 << 20
		stream = 64 << 20
		// slack covers headers, chunk framing, the server's read-ahead
		// and what net/http discards of a chunked body after the handler
		// (at most 256 KiB, looking for its end before closing).
		slack = 1 << 20
	)
	tests := []struct {
		name        string
		register    func(*http.ServeMux)
		path        string
		contentType string
		prefix      string
		wantErr     []string
	}{
		{"registration upload",
			func(mux *http.ServeMux) {
				(&Management{Registrar: &acceptingRegistrar{}, MaxUploadBytes: limit}).Register(mux)
			},
			"/v1/models", uploadContentType, modelPartHead,
			[]string{"limit of 1048576 bytes", "start it with a larger --max-upload"}},
		{"inference body",
			func(mux *http.ServeMux) { RegisterInference(mux, &fakeBackend{}, limit) },
			"/v2/models/resnet50/infer", "application/json", `{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["`,
			[]string{"over the limit of 1048576 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			tt.register(mux)
			srv, cl := startServed(t, mux)
			code, body, sent := streamChunked(t, srv.Client(), srv.URL+tt.path, tt.contentType, tt.prefix, stream)
			read := cl.read.Load()
			t.Logf("client handed over %d bytes; the server read %d", sent, read)
			if code != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413: %s", code, body)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(body, want) {
					t.Errorf("the refusal %s does not say %q", body, want)
				}
			}
			if read > limit+slack {
				t.Errorf("the server read %d bytes of a body limited to %d; it should stop within %d", read, limit, limit+slack)
			}
			if sent >= stream {
				t.Errorf("the client sent its whole %d-byte stream before the refusal", sent)
			}
		})
	}
}

// rawPost sends a request head announcing contentLength and then body,
// which may be shorter, over a fresh connection. With halfClose it then
// closes its sending side, so that the server meets the end of a short
// body at once; without, the server must answer before the body is done.
// It returns the status and the answer's body.
func rawPost(t *testing.T, addr, path, contentType string, contentLength int64, body string, halfClose bool) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A server that waited for the announced body would never answer.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", path, addr, contentType, contentLength)
	if _, err := io.WriteString(c, head+body); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a request announcing %d bytes: %v", contentLength, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestAnnouncedLengthIsNotAllocated sends requests that announce far more
// than they carry. Over the limit, the refusal is immediate (the client has
// sent a few bytes and waits); within it, the server reads what comes and
// meets the early end. Either way what the process allocates, client and
// server together, is a small fraction of the announced length: the body
// buffers grow with the bytes that arrive, not with Content-Length. The
// smallest of a few runs is taken so that a stray allocation elsewhere in
// the process does not fail the test.
func TestAnnouncedLengthIsNotAllocated(t *testing.T) {
	noLeaks(t)
	const (
		maxUpload  = 256 << 20 // cmd/infaas serve's default --max-upload
		allocBound = 4 << 20
		runs       = 5
	)
	mux := http.NewServeMux()
	(&Management{Registrar: &acceptingRegistrar{}, MaxUploadBytes: maxUpload}).Register(mux)
	RegisterInference(mux, &fakeBackend{}, serveMaxInferBody)
	srv, _ := startServed(t, mux)
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name        string
		path        string
		contentType string
		announced   int64
		body        string
		halfClose   bool
		wantStatus  int
		wantErr     string
	}{
		{"inference announcing 2 GiB", "/v2/models/resnet50/infer", "application/json", 2 << 30, `{"inputs":`, false,
			413, "2147483648 bytes, over the limit of 67108864"},
		{"upload announcing 2 GiB", "/v1/models", uploadContentType, 2 << 30, modelPartHead + "ONNX", false,
			413, "this server accepts at most 268435456 (start it with a larger --max-upload)"},
		{"inference announcing 60 MiB, sending 10 bytes", "/v2/models/resnet50/infer", "application/json", 60 << 20, `{"inputs":`, true,
			400, "unexpected EOF"},
		{"upload announcing 200 MiB, sending a part head", "/v1/models", uploadContentType, 200 << 20, modelPartHead + "ONNX", true,
			400, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			least := uint64(1<<64 - 1)
			for range runs {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				code, body := rawPost(t, addr, tt.path, tt.contentType, tt.announced, tt.body, tt.halfClose)
				runtime.ReadMemStats(&after)
				least = min(least, after.TotalAlloc-before.TotalAlloc)
				if code != tt.wantStatus || !strings.Contains(body, tt.wantErr) {
					t.Fatalf("got %d %s, want %d saying %q", code, body, tt.wantStatus, tt.wantErr)
				}
			}
			t.Logf("announced %d bytes; allocated at least %d", tt.announced, least)
			if least > allocBound {
				t.Errorf("a request announcing %d bytes and carrying %d allocated %d bytes in every run; want under %d",
					tt.announced, len(tt.body), least, allocBound)
			}
		})
	}
}
