//go:build !linux

package testredis

import "os/exec"

// setParentDeathSignal has no portable equivalent outside Linux; there a
// crashed test binary can leave its redis-server running.
func setParentDeathSignal(*exec.Cmd) {}
