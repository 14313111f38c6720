package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/provider"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeWorker is an executable that records its arguments and environment
// and then waits for a signal, like `infaas worker` does.
func fakeWorker(t *testing.T) (exe, dir string) {
	t.Helper()
	dir = t.TempDir()
	exe = filepath.Join(dir, "infaas")
	script := `#!/bin/sh
out="` + dir + `/$3.$$"
echo "$@" > "$out.args"
env > "$out.tmp" && mv "$out.tmp" "$out.env"
trap 'exit 0' TERM
while :; do sleep 0.05; done
`
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe, dir
}

func newProvider(t *testing.T, exe string, restart bool) *Provider {
	t.Helper()
	p, err := New(Config{Exe: exe, Controller: "127.0.0.1:9", Repository: "file:///models", Env: []string{"INFAAS_CLUSTER_TOKEN=tok"},
		CPUs: []int{0, 1}, Restart: restart, StopGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStartPinsAndPassesTheCluster(t *testing.T) {
	exe, dir := fakeWorker(t)
	p := newProvider(t, exe, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	a, err := p.Start(ctx, catalog.CPUClass(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Start(ctx, catalog.CPUClass(1))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Start(ctx, catalog.CPUClass(2))
	if err != nil {
		t.Fatal(err)
	}
	// One-core workers get a core each, in turn; a two-core one both.
	if a.CPUs != "0" || b.CPUs != "1" || c.CPUs != "0-1" {
		t.Fatalf("cpus: %s, %s, %s", a.CPUs, b.CPUs, c.CPUs)
	}
	if ws := p.List(); len(ws) != 3 || ws[0].ID != a.ID || ws[0].State != provider.StateRunning || ws[0].PID == 0 {
		t.Fatalf("list: %+v", ws)
	}
	argsFile := filepath.Join(dir, a.ID+"."+strconv.Itoa(a.PID))
	waitFor(t, "the worker wrote its arguments", func() bool { _, err := os.Stat(argsFile + ".env"); return err == nil })
	args, _ := os.ReadFile(argsFile + ".args")
	for _, want := range []string{"worker", "--id " + a.ID, "--class cpu-1", "--controller 127.0.0.1:9", "--cpus 0", "--repository file:///models"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	env, _ := os.ReadFile(argsFile + ".env")
	for _, want := range []string{"INFAAS_CLUSTER_TOKEN=tok", ParentPIDEnv + "=" + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(string(env), want) {
			t.Errorf("environment lacks %q", want)
		}
	}

	if err := p.Stop(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if alive(b.PID) {
		t.Fatalf("worker %s (pid %d) still runs after Stop", b.ID, b.PID)
	}
	if err := p.Stop(ctx, "nope"); !errors.Is(err, provider.ErrUnknownWorker) {
		t.Fatalf("stop of an unknown worker: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, w := range p.List() {
		if w.State != provider.StateStopped || alive(w.PID) {
			t.Fatalf("after Run returned: %+v (alive %v)", w, alive(w.PID))
		}
	}
	if _, err := p.Start(context.Background(), catalog.CPUClass(1)); err == nil {
		t.Fatal("Start after Run returned succeeded")
	}
}

func TestStartRefusesWhatTheMachineLacks(t *testing.T) {
	exe, _ := fakeWorker(t)
	p := newProvider(t, exe, false)
	if _, err := p.Start(context.Background(), catalog.CPUClass(4)); !errors.Is(err, provider.ErrCapacity) || !strings.Contains(err.Error(), "4 cores") {
		t.Fatalf("a 4-core class on 2 CPUs: %v", err)
	}
	gpu := catalog.HardwareClass{Name: "gpu-v100", Provider: "cuda", Cores: 1, MemoryBytes: 1, Accelerators: 1}
	if _, err := p.Start(context.Background(), gpu); !errors.Is(err, provider.ErrCapacity) {
		t.Fatalf("a cuda class: %v", err)
	}
	if len(p.List()) != 0 {
		t.Fatalf("refused starts left workers: %+v", p.List())
	}
}

func TestRestartsAWorkerThatDies(t *testing.T) {
	exe, _ := fakeWorker(t)
	p := newProvider(t, exe, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	w, err := p.Start(ctx, catalog.CPUClass(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(w.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker restarted", func() bool {
		ws := p.List()
		return len(ws) == 1 && ws[0].Restarts == 1 && ws[0].State == provider.StateRunning && ws[0].PID != w.PID
	})
	if ws := p.List(); !strings.Contains(ws[0].Exit, "killed") {
		t.Fatalf("exit of the killed worker: %q", ws[0].Exit)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
