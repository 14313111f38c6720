package testredis_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/infaas/infaas/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ping(addr string) (string, error) { return command(addr, "PING") }

// command sends one inline command and returns the first line of the reply.
func command(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestStart(t *testing.T) {
	var addr string
	t.Run("serves while the test runs", func(t *testing.T) {
		addr = testredis.Start(t)
		got, err := ping(addr)
		if err != nil || got != "+PONG" {
			t.Fatalf("PING %s = %q, %v; want +PONG", addr, got, err)
		}
	})
	t.Run("is gone after the test", func(t *testing.T) {
		if addr == "" {
			t.Fatal("previous subtest did not start a server")
		}
		if got, err := ping(addr); err == nil {
			t.Fatalf("PING %s after its test ended = %q; want connection refused", addr, got)
		}
	})
	t.Run("servers are independent", func(t *testing.T) {
		a, b := testredis.Start(t), testredis.Start(t)
		if a == b {
			t.Fatalf("two servers share address %s", a)
		}
	})
}

// TestRestart: a restarted server answers on the same address with
// nothing in it, and a new process ID.
func TestRestart(t *testing.T) {
	s := testredis.StartServer(t)
	if got, err := command(s.Addr, "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	pid := s.PID()
	s.Restart(t)
	if s.PID() == pid {
		t.Fatalf("the restarted server has the old process ID %d", pid)
	}
	if got, err := command(s.Addr, "EXISTS k"); err != nil || got != ":0" {
		t.Fatalf("EXISTS k after the restart = %q, %v; want :0", got, err)
	}
}
