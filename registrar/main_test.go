package registrar

import (
	"os"
	"testing"

	"github.com/infaas/infaas/profiler"
)

// TestMain lets the test binary serve as the profiler's child process.
func TestMain(m *testing.M) {
	profiler.MaybeRunChild()
	os.Exit(m.Run())
}
