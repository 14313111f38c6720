package profiler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/repository"
)

// MaxCacheEntries bounds a profile cache directory: storing one more
// removes the oldest entries. An entry is a few kilobytes; one registration
// of a zoo model stores one per graph and thread count (about a dozen).
const MaxCacheEntries = 4096

// cacheVersion changes when what a profile job measures changes (the
// timing rules, the statistics kept), so that older entries are not reused.
const cacheVersion = "infaas-profile-cache/2"

// cacheEntry is one stored measurement: the key's ingredients, for a
// person reading the directory, and the child's result.
type cacheEntry struct {
	Key        string    `json:"key"`
	Machine    string    `json:"machine"`
	Runtime    string    `json:"onnxruntime"`
	MeasuredAt time.Time `json:"measured_at"`
	Result     Result    `json:"result"`
}

// cacheKey identifies what a profile job measures on this machine: the
// job with every file it names replaced by its content's digest (the
// graph, the fp32 reference, the sample inputs), its measurement budget,
// ONNX Runtime's version and the machine (CPU model and the cores this
// process may use). Two jobs with the same key time the same bytes the
// same way on the same hardware.
func cacheKey(job Job) (string, error) {
	digest := func(path string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return repository.Digest(b), nil
	}
	var err error
	if job.ModelPath, err = digest(job.ModelPath); err != nil {
		return "", err
	}
	if job.ReferencePath, err = digest(job.ReferencePath); err != nil {
		return "", err
	}
	inputs := make([]string, len(job.Inputs))
	for i, p := range job.Inputs {
		if inputs[i], err = digest(p); err != nil {
			return "", err
		}
	}
	job.Inputs, job.OutPath = inputs, ""
	b, err := json.Marshal(struct {
		Version, Machine, Runtime string
		Cores                     int
		Job                       Job
	}{cacheVersion, Hardware(), executor.Version(), runtime.NumCPU(), job})
	if err != nil {
		return "", err
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:]), nil
}

// cached returns the stored result of the job with key, if the directory
// holds a readable entry for it.
func (p *Profiler) cached(key string) (Result, bool) {
	b, err := os.ReadFile(filepath.Join(p.cfg.CacheDir, key+".json"))
	if err != nil {
		return Result{}, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.Key != key || len(e.Result.Latency) == 0 {
		return Result{}, false // unreadable: measure again, and overwrite it
	}
	res := e.Result
	res.Reused, res.MeasuredAt = true, e.MeasuredAt
	return res, true
}

// store writes the result of the job with key, atomically (a reader sees
// the whole entry or none), then trims the directory to MaxCacheEntries.
func (p *Profiler) store(key string, res Result, at time.Time) error {
	dir := p.cfg.CacheDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cacheEntry{Key: key, Machine: Hardware(), Runtime: executor.Version(), MeasuredAt: at, Result: res}, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".entry-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, key+".json")); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return trimCache(dir, MaxCacheEntries)
}

// trimCache removes the oldest entries of dir beyond limit.
func trimCache(dir string, limit int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type file struct {
		name string
		mod  time.Time
	}
	var files []file
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			if info, err := e.Info(); err == nil {
				files = append(files, file{e.Name(), info.ModTime()})
			}
		}
	}
	if len(files) <= limit {
		return nil
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	var errs []error
	for _, f := range files[:len(files)-limit] {
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("trim profile cache: %w", err))
		}
	}
	return errors.Join(errs...)
}
