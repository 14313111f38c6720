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
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not on PATH; install it to run these tests "+
			"(Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; macOS: brew install redis): %v", err)
	}
	dir := t.TempDir() // removed after the server stops: cleanups run last-in first-out
	var errs []error
	for range startAttempts {
		srv, err := start(bin, dir)
		if err == nil {
			t.Cleanup(srv.stop)
			return srv.addr, srv.pid
		}
		errs = append(errs, err)
	}
	t.Fatalf("start redis-server (%d attempts): %v", startAttempts, errors.Join(errs...))
	return "", 0
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

func start(bin, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
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
