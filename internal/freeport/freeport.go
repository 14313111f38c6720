// Package freeport hands tests loopback addresses for servers they start
// as separate processes.
//
// Asking the kernel for port 0 and closing the listener is not enough for
// that: the port comes from the ephemeral range, the same range the kernel
// draws from for every outgoing connection, so under a load test one of
// the test's own client sockets can take it in the moment between the
// check and the child's bind ("address already in use"). Ports handed out
// here come from below the ephemeral range, where the kernel never assigns
// one by itself, are checked free by binding them, and are never handed
// out twice by one process.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Fallback bounds where the ephemeral range cannot be read (not Linux):
// IANA's dynamic range starts at 49152, Linux's default at 32768.
const (
	defaultEphemeralLow = 32768
	lowest              = 10000
	tries               = 200
)

var (
	mu     sync.Mutex
	issued = map[int]bool{}
)

// Loopback returns "127.0.0.1:PORT" for a port nobody listens on now,
// outside the kernel's ephemeral range, not handed out before by this
// process. It is free only until someone else binds it; a caller that
// starts a server on it should still retry on "address already in use".
func Loopback() (string, error) {
	hi := ephemeralLow() - 1
	lo := lowest
	if hi-lo < 1000 { // a tiny or odd configured range: use the kernel's
		return kernel()
	}
	mu.Lock()
	defer mu.Unlock()
	for range tries {
		port := lo + rand.IntN(hi-lo+1)
		if issued[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		issued[port] = true
		return addr, nil
	}
	return "", fmt.Errorf("freeport: no free loopback port in %d..%d after %d tries", lo, hi, tries)
}

// kernel asks the kernel for any free port.
func kernel() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("freeport: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLow
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultEphemeralLow
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 1024 {
		return defaultEphemeralLow
	}
	return n
}
