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
	base, goBase := residentBytes("VmRSS"), goRuntimeBytes()

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
	plan := newProfilePlan(job)
	perRun := warm[len(warm)/2] // ms for a batch of 1; then the last batch size's p50
	lastB, peak := 1, int64(0)
	for k, b := range job.Batches {
		est := perRun * float64(b) / float64(lastB)
		if !plan.fits(k, est) {
			plan.cut(k, est)
			break
		}
		in := inputs.batch(b, 0, bufs)
		for i := 0; i < job.Warmup; i++ {
			if outs, err = s.Run(in, outs); err != nil {
				return Result{}, fmt.Errorf("batch %d: %w", b, err)
			}
		}
		soft, hard := plan.shares(k, est)
		var lat []float64
		start := time.Now()
		for i := 0; i < job.MaxIters; i++ {
			if i >= job.MinIters && i%25 == 0 && done(lat, time.Since(start), soft, hard) {
				break
			}
			t := time.Now()
			if outs, err = s.Run(in, outs); err != nil {
				return Result{}, fmt.Errorf("batch %d: %w", b, err)
			}
			lat = append(lat, ms(time.Since(t)))
		}
		plan.spend(time.Since(start), b, len(lat))
		l := Summarise(lat)
		res.Latency[b] = l
		// The Go runtime's growth is this child's, not the model's: the
		// garbage of thousands of timed runs grew its heap by 3–6 MiB on
		// a 16 MiB MLP profile, by how many runs the budget allowed, and
		// flipped which variants were kept from one registration of the
		// same model to the next.
		// A high-water mark: never below the smaller batch sizes' run
		// before it.
		peak = max(peak, residentBytes("VmHWM")-base-(goRuntimeBytes()-goBase))
		res.PeakMemory[b] = peak
		perRun, lastB = l.P50, b
	}
	res.Note = plan.note()

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

// profilePlan spends one profile's time budget over its batch sizes,
// smallest first: each gets a share of what is left of the base budget
// (soft) and of its cap (hard) in proportion to its batch size, and a
// batch size whose MinIters runs — at the cost the previous batch size
// measured, scaled up — would not fit what is left of the cap is left
// out with the larger ones.
type profilePlan struct {
	job                Job
	softLeft, hardLeft time.Duration
	cutFrom            int // index of the first batch size left out; len(Batches): none
	estMs              float64
	few                []int // batch sizes timed fewer than MinRuns times
}

func newProfilePlan(job Job) *profilePlan {
	return &profilePlan{job: job, softLeft: job.Budget, hardLeft: max(job.MaxBudget, job.Budget), cutFrom: len(job.Batches)}
}

// fits says whether batch size k, estimated at estMs a run, can have
// MinIters runs in what is left of the cap. The first always fits.
func (p *profilePlan) fits(k int, estMs float64) bool {
	return k == 0 || time.Duration(float64(p.job.MinIters)*estMs*float64(time.Millisecond)) <= p.hardLeft
}

func (p *profilePlan) cut(k int, estMs float64) { p.cutFrom, p.estMs = k, estMs }

// shares are batch size k's soft and hard shares of what is left, its
// runs estimated at estMs: the hard share first sets aside MinIters runs
// of every larger batch size (scaled up from estMs), so the small batch
// sizes of a slow model do not spend what the large ones need.
func (p *profilePlan) shares(k int, estMs float64) (soft, hard time.Duration) {
	b := p.job.Batches[k]
	sum := 0
	reserve := 0.0
	for j, x := range p.job.Batches[k:] {
		sum += x
		if j > 0 {
			reserve += float64(p.job.MinIters) * estMs * float64(x) / float64(b)
		}
	}
	f := float64(b) / float64(max(sum, 1))
	avail := max(p.hardLeft-time.Duration(reserve*float64(time.Millisecond)), 0)
	return time.Duration(float64(max(p.softLeft, 0)) * f), time.Duration(float64(avail) * f)
}

// spend records what timing batch size b took and how many runs it had.
func (p *profilePlan) spend(d time.Duration, b, runs int) {
	p.softLeft -= d
	p.hardLeft = max(p.hardLeft-d, 0)
	if runs < MinRuns {
		p.few = append(p.few, b)
	}
}

// note says which batch sizes were left out, and which were timed fewer
// than MinRuns times; "" when neither.
func (p *profilePlan) note() string {
	var notes []string
	if p.cutFrom < len(p.job.Batches) {
		notes = append(notes, fmt.Sprintf("batch sizes %v not profiled: a batch of %d would take about %.3f ms, and %d runs of it do not fit what is left of the %s profiling budget (raise --profile-time)",
			p.job.Batches[p.cutFrom:], p.job.Batches[p.cutFrom], p.estMs, p.job.MinIters, max(p.job.MaxBudget, p.job.Budget).Round(time.Millisecond)))
	}
	if len(p.few) > 0 {
		notes = append(notes, fmt.Sprintf("batch sizes %v timed fewer than %d times within the budget: their p99 is less certain", p.few, MinRuns))
	}
	return strings.Join(notes, "; ")
}

// done says whether timing a batch size can stop after lat, spent so
// far: its p99 is pinned (a 95 % interval within ±5 %) after at least
// MinRuns runs; or its soft share is spent and it has MinRuns runs (a
// fast model has thousands by then, and both bounds from BoundRuns); or
// its hard share is spent.
func done(lat []float64, spent, soft, hard time.Duration) bool {
	n := len(lat)
	switch {
	case spent >= hard:
		return true
	case spent >= soft && n >= MinRuns:
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

// goRuntimeBytes is the memory the Go runtime holds from the system (heap,
// stacks, its own structures), less what it has given back: an upper
// bound on its resident share. A profile's memory subtracts its growth.
func goRuntimeBytes() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.Sys - m.HeapReleased)
}

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
