package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/internal/freeport"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/onnx/onnxtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	// runDir holds what the whole run shares: the binary, the shared
	// profile cache. TestMain removes it.
	runDir string
)

func TestMain(m *testing.M) {
	var err error
	if runDir, err = os.MkdirTemp("", "infaas-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(runDir)
	os.Exit(code)
}

// sharedProfileCache is a profile cache directory (serve --profile-cache)
// shared by the servers of every test of this run that passes it.
func sharedProfileCache() string { return filepath.Join(runDir, "profiles") }

// infaasBinary builds cmd/infaas once per test run.
func infaasBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root := onnxtest.RepoRoot(t)
		binPath = filepath.Join(runDir, "infaas")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/infaas")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr is a loopback address for a server a test starts as a process:
// outside the kernel's ephemeral range, so that none of the test's own
// client connections can take it before the server binds it.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// server is one `infaas serve` process.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	addr    string
	grpc    string
	metrics string
	cluster string // the private worker plane
	log     *syncBuffer
	done    chan struct{}
	c       *client.Client
}

// syncBuffer is a bytes.Buffer safe for the writer goroutines of exec.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs `infaas serve --data dir` plus args and waits until it
// answers. A port taken by someone else between freeAddr's check and the
// server's bind costs one more try on fresh ports.
func startServer(t testing.TB, dir string, args ...string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, log := tryServer(t, dir, args...)
		if s != nil {
			return s
		}
		if !strings.Contains(log, "address already in use") || attempt == 3 {
			t.Fatalf("server exited before it was ready:\n%s", log)
		}
		t.Logf("server start %d: a port was taken; trying fresh ports", attempt)
	}
}

// tryServer is one attempt of startServer: the server, or nil and the log
// of one that exited before it was ready.
func tryServer(t testing.TB, dir string, args ...string) (*server, string) {
	t.Helper()
	addr, gaddr, maddr, caddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := exec.Command(infaasBinary(t), append([]string{"serve", "--data", dir, "--http", addr, "--grpc", gaddr, "--metrics", maddr,
		"--cluster", caddr, "--profile-time", "40ms"}, args...)...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, addr: addr, grpc: gaddr, metrics: maddr, cluster: caddr, log: log, done: make(chan struct{}), c: client.New(addr)}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, ""
			}
		}
		select {
		case <-s.done:
			return nil, log.String()
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 30 s:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server with SIGKILL — no chance to clean up.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop stops the server gracefully.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("server did not stop within 10 s of SIGINT:\n%s", s.log.String())
		s.kill()
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

const pixelScale = 1.0 / 255

// registerZoo registers zoo model name (mnist-* or fashion-*) with its
// validation data and waits for it.
func (s *server) registerZoo(t testing.TB, name string) {
	t.Helper()
	dataset := strings.SplitN(name, "-", 2)[0]
	scale := pixelScale
	if name == "mnist-8" {
		scale = 1
	}
	c := ctx(t)
	_, err := s.c.Register(c, client.Registration{
		Name: name, Task: "classification", Dataset: dataset,
		ModelPath: zootest.Path(t, "models/"+name+".onnx"), ValidationDir: zootest.Path(t, "data/"+dataset), InputScale: scale,
	})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if _, err := s.c.Wait(c, name, nil); err != nil {
		t.Fatalf("register %s: %v\n%s", name, err, s.log.String())
	}
}
