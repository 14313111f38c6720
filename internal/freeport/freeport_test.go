package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestLoopback: the ports are bindable, distinct, and below the kernel's
// ephemeral range.
func TestLoopback(t *testing.T) {
	seen := map[string]bool{}
	low := ephemeralLow()
	for range 50 {
		addr, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < lowest || port >= low {
			t.Errorf("port %d outside %d..%d", port, lowest, low-1)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is not free: %v", addr, err)
		}
		l.Close()
	}
}
