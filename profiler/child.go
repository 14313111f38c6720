package profiler

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
)

// childEnv marks a process as a profiler child.
const childEnv = "INFAAS_PROFILER_CHILD"

// MaybeRunChild turns this process into a profiler child when it was started
// as one: it reads a Job from stdin, writes a Result to stdout and exits.
// Call it first thing in main and in TestMain of packages that profile.
func MaybeRunChild() {
	if os.Getenv(childEnv) != "1" {
		return
	}
	var job Job
	res := Result{}
	if err := json.NewDecoder(os.Stdin).Decode(&job); err != nil {
		res.Error = "decode job: " + err.Error()
	} else if r, err := runJob(job); err != nil {
		res.Error = err.Error()
	} else {
		res = r
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

func runJob(job Job) (Result, error) {
	if err := executor.Init(); err != nil {
		return Result{}, err
	}
	model, err := os.ReadFile(job.ModelPath)
	if err != nil {
		return Result{}, err
	}
	switch job.Kind {
	case KindInspect:
		io, err := executor.Inspect(model)
		if err != nil {
			return Result{}, err
		}
		// Creating a session catches what reading the signature does not.
		s, err := executor.Load(model, executor.Options{Threads: 1, OptLevel: executor.OptBasic})
		if err != nil {
			return Result{}, err
		}
		s.Close()
		return Result{IO: io}, nil
	case KindOptimize:
		out, err := executor.Optimize(model, job.Options.OptLevel)
		if err != nil {
			return Result{}, err
		}
		return Result{}, os.WriteFile(job.OutPath, out, 0o600)
	case KindProfile:
		return profile(model, job)
	}
	return Result{}, fmt.Errorf("unknown job kind %q", job.Kind)
}

func profile(model []byte, job Job) (Result, error) {
	inputs, err := os.ReadFile(job.InputPath)
	if err != nil {
		return Result{}, err
	}
	if job.Samples <= 0 || len(inputs)%job.Samples != 0 {
		return Result{}, fmt.Errorf("input file holds %d bytes, not a whole number of %d samples", len(inputs), job.Samples)
	}
	sampleBytes := len(inputs) / job.Samples
	base := residentBytes("VmRSS")

	start := time.Now()
	s, err := executor.Load(model, job.Options)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	res := Result{
		IO:         s.IO(),
		LoadMs:     ms(time.Since(start)),
		Latency:    map[int]catalog.Latency{},
		PeakMemory: map[int]int64{},
		Hardware:   Hardware(),
	}

	var out []byte
	batchInput := func(b, offset int) []byte {
		buf := make([]byte, 0, b*sampleBytes)
		for i := 0; i < b; i++ {
			k := (offset + i) % job.Samples
			buf = append(buf, inputs[k*sampleBytes:(k+1)*sampleBytes]...)
		}
		return buf
	}
	for _, b := range job.Batches {
		in := batchInput(b, 0)
		for i := 0; i < job.Warmup; i++ {
			if out, _, err = s.Run(in, b, out); err != nil {
				return Result{}, fmt.Errorf("batch %d: %w", b, err)
			}
		}
		var lat []float64
		deadline := time.Now().Add(job.PerBatch)
		for i := 0; i < job.MaxIters && (i < job.MinIters || time.Now().Before(deadline)); i++ {
			t := time.Now()
			if out, _, err = s.Run(in, b, out); err != nil {
				return Result{}, fmt.Errorf("batch %d: %w", b, err)
			}
			lat = append(lat, ms(time.Since(t)))
		}
		res.Latency[b] = summarise(lat)
		res.PeakMemory[b] = max(residentBytes("VmHWM")-base, 0)
	}

	if len(job.Labels) > 0 {
		acc, err := accuracy(s, inputs, sampleBytes, job)
		if err != nil {
			return Result{}, err
		}
		res.Accuracy = &acc
	}
	return res, nil
}

// accuracy runs every sample in batches of the largest profiled batch size
// and compares the argmax of each output row with its label.
func accuracy(s *executor.Session, inputs []byte, sampleBytes int, job Job) (float64, error) {
	io := s.IO()
	if io.Output.DataType != "FP32" || len(io.Output.Shape) != 2 {
		return 0, fmt.Errorf("accuracy needs an FP32 [batch, classes] output; %q is %s %v", io.Output.Name, io.Output.DataType, io.Output.Shape)
	}
	b := job.Batches[len(job.Batches)-1]
	correct := 0
	var out []byte
	for off := 0; off < job.Samples; off += b {
		n := min(b, job.Samples-off)
		var err error
		var shape []int64
		out, shape, err = s.Run(inputs[off*sampleBytes:(off+n)*sampleBytes], n, out)
		if err != nil {
			return 0, fmt.Errorf("accuracy batch at %d: %w", off, err)
		}
		classes := int(shape[1])
		for i := 0; i < n; i++ {
			best, bestV := 0, float32(math.Inf(-1))
			for c := 0; c < classes; c++ {
				v := math.Float32frombits(binary.LittleEndian.Uint32(out[4*(i*classes+c):]))
				if v > bestV {
					best, bestV = c, v
				}
			}
			if best == job.Labels[off+i] {
				correct++
			}
		}
	}
	return 100 * float64(correct) / float64(job.Samples), nil
}

func summarise(lat []float64) catalog.Latency {
	sort.Float64s(lat)
	return catalog.Latency{P50: percentile(lat, 50), P99: percentile(lat, 99), Samples: len(lat)}
}

// percentile of sorted values, nearest-rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// residentBytes reads a Vm* line (kB) of /proc/self/status.
func residentBytes(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Hardware describes this machine, e.g. "2 cores, AMD EPYC 7B13".
func Hardware() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if k, v, ok := strings.Cut(string(line), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s", runtime.NumCPU(), cpu)
}
