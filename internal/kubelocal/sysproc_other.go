//go:build !linux

package kubelocal

import "os/exec"

// startChild starts cmd. A parent-death signal has no portable equivalent
// outside Linux; there a test binary killed without running its cleanups
// leaves its control plane running.
func startChild(cmd *exec.Cmd) error { return cmd.Start() }
