package batching

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// pure lists the policy packages a simulator links: none of them, nor
// anything they import, may link ONNX Runtime or any other C code. Add a
// package here when it joins them.
var pure = []string{
	"github.com/infaas/infaas/batching",
	"github.com/infaas/infaas/selection",
	"github.com/infaas/infaas/catalog",
	"github.com/infaas/infaas/autoscale",
	"github.com/infaas/infaas/policies",
	"github.com/infaas/infaas/workload",
	"github.com/infaas/infaas/sim",
	"github.com/infaas/infaas/health",
}

// stdCgo are the standard library packages that have cgo files on Linux
// yet build without C (netgo, osusergo, and the runtime's own glue).
var stdCgo = map[string]bool{"runtime/cgo": true, "net": true, "os/user": true}

// banned are packages a pure package must not reach even were they to
// lose their cgo files: the runtime that serves models, and its binding.
var banned = map[string]bool{
	"github.com/yalue/onnxruntime_go":   true,
	"github.com/infaas/infaas/worker":   true,
	"github.com/infaas/infaas/executor": true,
}

// TestPurity lists every dependency of the pure packages with go list and
// fails on one that has cgo files or is banned.
func TestPurity(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the purity check runs `go list` and needs the go command on PATH: %v", err)
	}
	cmd := exec.Command(goBin, append([]string{"list", "-deps", "-f", `{{.ImportPath}} {{.Standard}} {{join .CgoFiles " "}}`}, pure...)...)
	// List cgo files as a cgo build sees them, whatever this run's setting.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(pure, " "), err, stderr.String())
	}
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			t.Fatalf("go list printed %q; want an import path and whether it is standard", sc.Text())
		}
		seen++
		path, std, cgoFiles := f[0], f[1] == "true", f[2:]
		if banned[path] {
			t.Errorf("%s is among the dependencies of the pure packages", path)
		}
		if len(cgoFiles) > 0 && !(std && stdCgo[path]) {
			t.Errorf("%s has cgo files (%s) and is among the dependencies of the pure packages", path, strings.Join(cgoFiles, " "))
		}
	}
	if seen < len(pure) {
		t.Fatalf("go list listed %d packages, fewer than the %d asked for:\n%s", seen, len(pure), out)
	}
}
