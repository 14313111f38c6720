package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv names the environment variable that points at libonnxruntime.so.1.
const LibraryEnv = "INFAAS_ORT_LIB"

// LibraryName is the file the build fetches (see the Makefile's ort target).
const LibraryName = "libonnxruntime.so.1"

// libraryDir is where `make ort` puts the library, relative to the repository root.
const libraryDir = ".cache/onnxruntime"

// ErrNoLibrary is returned when the ONNX Runtime library cannot be found.
var ErrNoLibrary = errors.New("ONNX Runtime library not found")

var (
	initOnce sync.Once
	initErr  error
	initPath string
)

// FindLibrary returns the path of libonnxruntime.so.1: $INFAAS_ORT_LIB if
// set, else the first of <executable dir>/, <executable dir>/../.cache/onnxruntime/
// and .cache/onnxruntime/ in the working directory or any directory above it.
func FindLibrary() (string, error) {
	if p := os.Getenv(LibraryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNoLibrary, LibraryEnv, p, err)
		}
		return p, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		tried = append(tried, filepath.Join(dir, LibraryName), filepath.Join(dir, "..", libraryDir, LibraryName))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			tried = append(tried, filepath.Join(dir, libraryDir, LibraryName))
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("%w: run `make ort` in the infaas repository to fetch it, or set %s to the path of %s",
		ErrNoLibrary, LibraryEnv, LibraryName)
}

// Init loads ONNX Runtime once per process. Later calls return the first
// call's result.
func Init() error {
	initOnce.Do(func() {
		path, err := FindLibrary()
		if err != nil {
			initErr = err
			return
		}
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("initialise ONNX Runtime from %s: %w (the library must be ONNX Runtime 1.24.x)", path, err)
			return
		}
		_ = ort.DisableTelemetry()
		initPath = path
	})
	return initErr
}

// LibraryPath is the library Init loaded ("" before a successful Init).
func LibraryPath() string { return initPath }

// Version is the loaded ONNX Runtime's version.
func Version() string {
	if Init() != nil {
		return ""
	}
	return ort.GetVersion()
}
