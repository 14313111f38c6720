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

func ping(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
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
