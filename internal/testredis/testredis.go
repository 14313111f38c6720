package testredis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// startAttempts covers the race between finding a free port and
	// redis-server binding it.
	startAttempts = 5
	readyTimeout  = 15 * time.Second
	pollInterval  = 10 * time.Millisecond
)

// Start runs a redis-server that keeps nothing on disk, on a free loopback
// port, until t ends, and returns its address ("127.0.0.1:port"). It fails
// t if redis-server is not on PATH or does not come up.
func Start(t testing.TB) (addr string) {
	t.Helper()
	addr, _ = StartProcess(t)
	return addr
}

// StartProcess is Start that also returns the server's process ID, for
// tests that pause it (SIGSTOP) to play an unreachable Redis.
func StartProcess(t testing.TB) (addr string, pid int) {
	t.Helper()
	s := StartServer(t)
	return s.Addr, s.PID()
}

// Server is a redis-server a test started, which it may restart.
type Server struct {
	// Addr is where it listens ("127.0.0.1:port"), the same across
	// restarts.
	Addr string

	bin, dir string
	mu       sync.Mutex
	cur      *server
}

// StartServer is Start that returns the server, for tests that restart it.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not on PATH; install it to run these tests "+
			"(Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; macOS: brew install redis): %v", err)
	}
	dir := t.TempDir() // removed after the server stops: cleanups run last-in first-out
	var errs []error
	for range startAttempts {
		port, err := freePort()
		if err == nil {
			var srv *server
			if srv, err = start(bin, dir, port); err == nil {
				s := &Server{Addr: srv.addr, bin: bin, dir: dir, cur: srv}
				t.Cleanup(func() {
					s.mu.Lock()
					defer s.mu.Unlock()
					s.cur.stop()
				})
				return s
			}
		}
		errs = append(errs, err)
	}
	t.Fatalf("start redis-server (%d attempts): %v", startAttempts, errors.Join(errs...))
	return nil
}

// PID is the running server's process ID.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.pid
}

// Restart kills the server and starts another on the same port with
// nothing in it, as a Redis without persistence comes back from a crash.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.stop()
	_, port, _ := net.SplitHostPort(s.Addr)
	var errs []error
	for range startAttempts {
		srv, err := start(s.bin, s.dir, port)
		if err == nil {
			s.cur = srv
			return
		}
		errs = append(errs, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("restart redis-server on %s (%d attempts): %v", s.Addr, startAttempts, errors.Join(errs...))
}

type server struct {
	addr   string
	pid    int
	cancel context.CancelFunc
	exited chan struct{}
}

// stop kills the server and waits until it has gone, so that no process
// or goroutine outlives the test.
func (s *server) stop() {
	s.cancel()
	<-s.exited
}

func start(bin, dir, port string) (*server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--port", port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", dir,
	)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	srv := &server{addr: net.JoinHostPort("127.0.0.1", port), pid: cmd.Process.Pid, cancel: cancel, exited: make(chan struct{})}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(srv.exited)
	}()
	if err := waitReady(srv.addr, cmd.Process.Pid, srv.exited); err != nil {
		srv.stop()
		if waitErr != nil {
			err = fmt.Errorf("%w (%v)", err, waitErr)
		}
		return nil, fmt.Errorf("redis-server on port %s: %w; its output:\n%s", port, err, out)
	}
	return srv, nil
}

// freePort asks the kernel for a loopback port nobody is listening on.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// waitReady polls addr until the redis-server with process ID pid answers
// there (not some other server that won the port), it exits, or time runs out.
func waitReady(addr string, pid int, exited <-chan struct{}) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-exited:
			return errors.New("exited before accepting connections")
		case <-deadline.C:
			return fmt.Errorf("not ready after %v: %v", readyTimeout, last)
		case <-tick.C:
		}
		got, err := serverPID(addr)
		switch {
		case err != nil:
			last = err
		case got != pid:
			return fmt.Errorf("another redis-server (pid %d) answers on %s", got, addr)
		default:
			return nil
		}
	}
}

// serverPID asks the server at addr for its process ID (INFO server).
func serverPID(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(conn, "INFO server\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	header, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(header, "$") {
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(header))
	}
	n, err := strconv.Atoi(strings.TrimSpace(header[1:]))
	if err != nil {
		return 0, fmt.Errorf("INFO answered %q: %w", strings.TrimSpace(header), err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// lockedBuffer collects the server's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
