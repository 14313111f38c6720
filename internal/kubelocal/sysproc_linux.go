package kubelocal

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startChild starts cmd so that the kernel sends it SIGKILL when the thread
// that started it ends. Go keeps its threads until the process ends (a
// thread dies early only if a goroutine exits while locked to it, which the
// lock/unlock pair here does not do), so in practice the control plane dies
// with the test binary even when that is killed without running its
// cleanups (SIGKILL, a test timeout's panic).
//
// SIGKILL, not SIGTERM: every component gets the signal at once, and a
// kube-apiserver told to shut down gracefully while its etcd goes away
// never finishes (its pre-shutdown hooks wait for storage), so it kept
// running and listening. Nothing here has state worth a graceful end.
func startChild(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Start()
}
