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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
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
	inputs, err := readInputs(job, os.ReadFile)
	if err != nil {
		return Result{}, err
	}
	base := residentBytes("VmRSS")

	start := time.Now()
	s, err := executor.Load(model, job.Options)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	if len(s.IO().Inputs) != len(inputs.Data) {
		return Result{}, fmt.Errorf("the model has %d inputs; the job gives %d", len(s.IO().Inputs), len(inputs.Data))
	}
	res := Result{
		IO:         s.IO(),
		LoadMs:     ms(time.Since(start)),
		Latency:    map[int]catalog.Latency{},
		PeakMemory: map[int]int64{},
		Hardware:   Hardware(),
	}

	bufs := make([][]byte, len(inputs.Data))
	var outs []inference.Tensor
	for _, b := range job.Batches {
		if !inputs.Batched && b != 1 {
			return Result{}, fmt.Errorf("batch %d: the model has no batch dimension", b)
		}
	}
	// Time one batch of 1 to plan the budget: a model gets the time that
	// MinRuns runs of every batch size need, between the base budget and
	// its cap; a batch size that cannot have even MinIters runs within
	// the cap is left out, and said.
	one := inputs.batch(1, 0, bufs)
	var warm []float64
	for i := 0; i <= max(job.Warmup, 2); i++ {
		t := time.Now()
		if outs, err = s.Run(one, outs); err != nil {
			return Result{}, fmt.Errorf("batch 1: %w", err)
		}
		warm = append(warm, ms(time.Since(t)))
	}
	slices.Sort(warm)
	plan := planProfile(warm[len(warm)/2], job)
	res.Note = plan.note
	for _, b := range plan.batches {
		in := inputs.batch(b, 0, bufs)
		for i := 0; i < job.Warmup; i++ {
			if outs, err = s.Run(in, outs); err != nil {
				return Result{}, fmt.Errorf("batch %d: %w", b, err)
			}
		}
		var lat []float64
		start := time.Now()
		for i := 0; i < job.MaxIters; i++ {
			if i >= job.MinIters && i%25 == 0 && plan.done(b, lat, time.Since(start)) {
				break
			}
			t := time.Now()
			if outs, err = s.Run(in, outs); err != nil {
				return Result{}, fmt.Errorf("batch %d: %w", b, err)
			}
			lat = append(lat, ms(time.Since(t)))
		}
		res.Latency[b] = Summarise(lat)
		res.PeakMemory[b] = max(residentBytes("VmHWM")-base, 0)
	}

	if len(job.Labels) > 0 {
		acc, err := accuracy(s, inputs, job)
		if err != nil {
			return Result{}, err
		}
		res.Accuracy = &acc
	}
	if job.ReferencePath != "" {
		ref, err := os.ReadFile(job.ReferencePath)
		if err != nil {
			return Result{}, err
		}
		f, err := fidelity(s, ref, inputs, job)
		if err != nil {
			return Result{}, err
		}
		res.Fidelity = &f
	}
	return res, nil
}

// profilePlan is how one profile spends its time: the batch sizes timed,
// each one's share of the base budget (soft) and of its cap (hard), and
// what was cut.
type profilePlan struct {
	batches    []int
	soft, hard map[int]time.Duration
	note       string
}

// planProfile plans a profile whose batch-1 run took firstMs. Each batch
// size gets a share of the base budget and of its cap in proportion to
// the batch size. The largest batch sizes are left out while even
// MinIters runs of them would not fit the cap (a batch of b taken to cost
// b batches of 1, which errs long); the note says so, and where fewer
// than MinRuns runs are likely to fit.
func planProfile(firstMs float64, job Job) profilePlan {
	batches := slices.Clone(job.Batches)
	sum := 0
	for _, b := range batches {
		sum += b
	}
	first := time.Duration(firstMs * float64(time.Millisecond))
	capBudget := max(job.MaxBudget, job.Budget)
	var cut []int
	for len(batches) > 1 && time.Duration(job.MinIters*batches[len(batches)-1])*first > capBudget {
		cut = append(cut, batches[len(batches)-1])
		sum -= batches[len(batches)-1]
		batches = batches[:len(batches)-1]
	}
	p := profilePlan{batches: batches, soft: map[int]time.Duration{}, hard: map[int]time.Duration{}}
	var few []int
	for _, b := range batches {
		share := float64(b) / float64(max(sum, 1))
		p.soft[b] = time.Duration(float64(job.Budget) * share)
		p.hard[b] = time.Duration(float64(capBudget) * share)
		if first > 0 && p.hard[b] < time.Duration(MinRuns*b)*first {
			few = append(few, b)
		}
	}
	var notes []string
	if len(cut) > 0 {
		slices.Reverse(cut)
		notes = append(notes, fmt.Sprintf("batch sizes %v not profiled: one batch of 1 takes %.3f ms, and %d runs of them would not fit the %s profiling budget (raise --profile-time)",
			cut, firstMs, job.MinIters, capBudget.Round(time.Millisecond)))
	}
	if len(few) > 0 {
		notes = append(notes, fmt.Sprintf("batch sizes %v timed fewer than %d times within the %s budget: their p99 is less certain", few, MinRuns, capBudget.Round(time.Millisecond)))
	}
	p.note = strings.Join(notes, "; ")
	return p
}

// done says whether timing batch size b can stop after lat, spent so far:
// its p99 is pinned (a 95 % interval within ±5 %) after at least MinRuns
// runs; or its soft share is spent and the p99 has both bounds (BoundRuns
// runs); or its hard share is spent.
func (p profilePlan) done(b int, lat []float64, spent time.Duration) bool {
	n := len(lat)
	switch {
	case spent >= p.hard[b]:
		return true
	case spent >= p.soft[b] && n >= BoundRuns:
		return true
	case n >= MinRuns && n >= BoundRuns:
		return Enough(lat, MaxRuns, 0.05)
	}
	return false
}

// chunk is the batch size accuracy and fidelity run the samples in.
func chunk(inputs SampleInputs, job Job) int {
	if !inputs.Batched || len(job.Batches) == 0 {
		return 1
	}
	return job.Batches[len(job.Batches)-1]
}

// accuracy runs every sample in batches of the largest profiled batch size
// and compares the argmax of each row of the first output with its label.
func accuracy(s *executor.Session, inputs SampleInputs, job Job) (float64, error) {
	if c := s.IO(); c.Classes() == 0 {
		return 0, fmt.Errorf("accuracy needs a first output of FP32 class scores [batch, classes]; %s is not one", c.Describe(c.Outputs[0]))
	}
	if len(job.Labels) != inputs.N {
		return 0, fmt.Errorf("%d labels for %d samples", len(job.Labels), inputs.N)
	}
	b := chunk(inputs, job)
	correct := 0
	bufs := make([][]byte, len(inputs.Data))
	var outs []inference.Tensor
	for off := 0; off < inputs.N; off += b {
		n := min(b, inputs.N-off)
		var err error
		if outs, err = s.Run(inputs.batch(n, off, bufs), outs); err != nil {
			return 0, fmt.Errorf("accuracy batch at %d: %w", off, err)
		}
		for i, c := range argmaxRows(outs[0]) {
			if c == job.Labels[off+i] {
				correct++
			}
		}
	}
	return 100 * float64(correct) / float64(inputs.N), nil
}

// argmaxRows is the argmax of each row of FP32 scores [rows, classes].
func argmaxRows(t inference.Tensor) []int {
	if len(t.Shape) != 2 || t.Datatype != "FP32" {
		return nil
	}
	rows, classes := int(t.Shape[0]), int(t.Shape[1])
	out := make([]int, rows)
	for i := range rows {
		best, bestV := 0, float32(math.Inf(-1))
		for c := range classes {
			v := math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*(i*classes+c):]))
			if v > bestV {
				best, bestV = c, v
			}
		}
		out[i] = best
	}
	return out
}

// fidelity runs every sample through the variant and the reference graph
// and compares their outputs (catalog.Fidelity).
func fidelity(s *executor.Session, reference []byte, inputs SampleInputs, job Job) (catalog.Fidelity, error) {
	ref, err := executor.Load(reference, executor.Options{Threads: 1})
	if err != nil {
		return catalog.Fidelity{}, fmt.Errorf("reference graph: %w", err)
	}
	defer ref.Close()
	f := catalog.Fidelity{Samples: inputs.N, Top1: -1, Cosine: 1}
	b := chunk(inputs, job)
	bufs := make([][]byte, len(inputs.Data))
	var agree, classified, relN, intN, intBad float64
	var relSum float64
	for off := 0; off < inputs.N; off += b {
		n := min(b, inputs.N-off)
		in := inputs.batch(n, off, bufs)
		got, err := s.Run(in, nil)
		if err != nil {
			return f, fmt.Errorf("fidelity batch at %d: %w", off, err)
		}
		want, err := ref.Run(in, nil)
		if err != nil {
			return f, fmt.Errorf("fidelity batch at %d (reference): %w", off, err)
		}
		for j := range want {
			g, w := got[j], want[j]
			if len(g.Data) != len(w.Data) {
				return f, fmt.Errorf("output %q has %d bytes in the variant but %d in the reference", w.Name, len(g.Data), len(w.Data))
			}
			if j == 0 && ref.IO().Classes() > 0 {
				ga, wa := argmaxRows(g), argmaxRows(w)
				for i := range wa {
					classified++
					if ga[i] == wa[i] {
						agree++
					}
				}
			}
			gv, wv, ok := floats(g), floats(w), true
			if gv == nil || wv == nil {
				ok = false
			}
			if !ok { // integer or boolean output: count differing elements
				size := max(executor.ElementSize(w.Datatype), 1)
				for k := 0; k+size <= len(w.Data); k += size {
					intN++
					if string(g.Data[k:k+size]) != string(w.Data[k:k+size]) {
						intBad++
					}
				}
				continue
			}
			rows := 1
			if inputs.Batched && len(w.Shape) > 0 {
				rows = int(w.Shape[0])
			}
			per := len(wv) / max(rows, 1)
			for r := range rows {
				var dot, gg, ww float64
				for k := r * per; k < (r+1)*per; k++ {
					d := math.Abs(gv[k]-wv[k]) / (math.Abs(wv[k]) + 1e-6)
					f.MaxRelError = max(f.MaxRelError, d)
					relSum += d
					relN++
					dot += gv[k] * wv[k]
					gg += gv[k] * gv[k]
					ww += wv[k] * wv[k]
				}
				cos := 1.0
				if gg > 0 && ww > 0 {
					cos = dot / math.Sqrt(gg*ww)
				} else if gg != ww {
					cos = 0
				}
				f.Cosine = min(f.Cosine, cos)
			}
		}
	}
	if classified > 0 {
		f.Top1 = agree / classified
	}
	if relN > 0 {
		f.MeanRelError = relSum / relN
	}
	if intN > 0 {
		f.Mismatch = intBad / intN
	}
	return f, nil
}

// floats decodes a floating-point tensor's elements, or nil for another
// datatype.
func floats(t inference.Tensor) []float64 {
	var out []float64
	switch t.Datatype {
	case "FP32":
		for k := 0; k+4 <= len(t.Data); k += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[k:]))))
		}
	case "FP64":
		for k := 0; k+8 <= len(t.Data); k += 8 {
			out = append(out, math.Float64frombits(binary.LittleEndian.Uint64(t.Data[k:])))
		}
	default:
		return nil
	}
	if out == nil {
		out = []float64{}
	}
	return out
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
