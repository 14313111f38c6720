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
	// Warm each batch size up, smallest first, and estimate its run from
	// the warm-up's median: a batch size whose MinIters runs would not fit
	// the cap (estimated from the last size's, scaled up) is left out with
	// the larger ones, before it runs at all. The memory high-water mark
	// is read after each size's warm-up, which allocated what its runs need.
	perRun := warm[len(warm)/2] // ms for a batch of 1; then the last batch size's warm-up median
	lastB, peak := 1, int64(0)
	var sizes []int
	var est []float64
	for k, b := range job.Batches {
		e := perRun * float64(b) / float64(lastB)
		if !plan.fits(k, e) {
			plan.cut(k, e)
			break
		}
		in := inputs.batch(b, 0, bufs)
		var ws []float64
		for i := 0; i < max(job.Warmup, 1); i++ {
			t := time.Now()
			if outs, err = s.Run(in, outs); err != nil {
				return Result{}, fmt.Errorf("batch %d: %w", b, err)
			}
			ws = append(ws, ms(time.Since(t)))
		}
		slices.Sort(ws)
		med := ws[len(ws)/2]
		// The Go runtime's growth is this child's, not the model's: the
		// garbage of thousands of timed runs grew its heap by 3–6 MiB on
		// a 16 MiB MLP profile, by how many runs the budget allowed, and
		// flipped which variants were kept from one registration of the
		// same model to the next.
		// A high-water mark: never below the smaller batch sizes' run
		// before it.
		peak = max(peak, residentBytes("VmHWM")-base-(goRuntimeBytes()-goBase))
		res.PeakMemory[b] = peak
		plan.keep(med)
		sizes, est = append(sizes, b), append(est, med)
		perRun, lastB = med, b
	}
	// Then time them interleaved (timeInterleaved): the largest batch's
	// inputs hold every smaller one's as a prefix.
	full := inputs.batch(sizes[len(sizes)-1], 0, bufs)
	ins := make([][]inference.Tensor, len(sizes))
	for k, b := range sizes {
		ins[k] = inputs.prefix(full, b)
	}
	lats, err := timeInterleaved(sizes, est, job, plan, func(k int) (time.Duration, error) {
		t := time.Now()
		if outs, err = s.Run(ins[k], outs); err != nil {
			return 0, fmt.Errorf("batch %d: %w", sizes[k], err)
		}
		return time.Since(t), nil
	})
	if err != nil {
		return Result{}, err
	}
	for k, b := range sizes {
		res.Latency[b] = Summarise(lats[k])
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

// profilePlan spends one profile's time budget over its batch sizes. Each
// batch size kept sets aside MinIters runs at its estimated cost; one whose
// MinIters runs would not fit the cap beside those of the smaller sizes is
// left out with the larger ones. What the cap leaves beyond those runs,
// and the base budget, are shared in proportion to the batch sizes.
type profilePlan struct {
	job      Job
	reserved time.Duration // MinIters runs of every batch size kept so far
	cutFrom  int           // index of the first batch size left out; len(Batches): none
	estMs    float64
	few      []int // batch sizes timed fewer than MinRuns times
}

func newProfilePlan(job Job) *profilePlan {
	return &profilePlan{job: job, cutFrom: len(job.Batches)}
}

// limit is the cap on the time spent timing runs.
func (p *profilePlan) limit() time.Duration { return max(p.job.MaxBudget, p.job.Budget) }

// runs is n runs of estMs each.
func runs(n int, estMs float64) time.Duration {
	return time.Duration(float64(n) * estMs * float64(time.Millisecond))
}

// fits says whether batch size k, estimated at estMs a run, can have
// MinIters runs within the cap beside those set aside for the batch sizes
// kept before it. The first always fits.
func (p *profilePlan) fits(k int, estMs float64) bool {
	return k == 0 || p.reserved+runs(p.job.MinIters, estMs) <= p.limit()
}

// keep sets aside MinIters runs of a batch size kept at estMs a run.
func (p *profilePlan) keep(estMs float64) { p.reserved += runs(p.job.MinIters, estMs) }

func (p *profilePlan) cut(k int, estMs float64) { p.cutFrom, p.estMs = k, estMs }

// shares are each kept batch size's soft share of the base budget and
// hard share of the cap, sizes[k] estimated at est[k] ms a run: the base
// budget in proportion to the batch size; of the cap, its own MinIters
// runs and, in the same proportion, what is left beyond everyone's.
func (p *profilePlan) shares(sizes []int, est []float64) (soft, hard []time.Duration) {
	sum := 0
	for _, b := range sizes {
		sum += b
	}
	left := max(p.limit()-p.reserved, 0)
	for k, b := range sizes {
		f := float64(b) / float64(max(sum, 1))
		soft = append(soft, time.Duration(float64(p.job.Budget)*f))
		hard = append(hard, runs(p.job.MinIters, est[k])+time.Duration(float64(left)*f))
	}
	return soft, hard
}

// note says which batch sizes were left out, and which were timed fewer
// than MinRuns times; "" when neither.
func (p *profilePlan) note() string {
	var notes []string
	if p.cutFrom < len(p.job.Batches) {
		notes = append(notes, fmt.Sprintf("batch sizes %v not profiled: a batch of %d would take about %.3f ms, and %d runs of it do not fit what is left of the %s profiling budget (raise --profile-time)",
			p.job.Batches[p.cutFrom:], p.job.Batches[p.cutFrom], p.estMs, p.job.MinIters, p.limit().Round(time.Millisecond)))
	}
	if len(p.few) > 0 {
		notes = append(notes, fmt.Sprintf("batch sizes %v timed fewer than %d times within the budget: their p99 is less certain", p.few, MinRuns))
	}
	return strings.Join(notes, "; ")
}

// timeInterleaved times the batch sizes in turns — a few runs of each,
// smallest first, over and over — until each is done (done, its shares
// from plan, at most job.MaxIters runs), and returns each one's run times
// in ms. run(k) runs sizes[k] once. Timed one after another, a batch size
// timed while the host was slow for a second took the whole slow-down:
// one registration on a 2-core VM profiled convnet's batch of 8 at
// 46.5 ms where its other eight registrations that day measured 33.9–34.9
// and its batches of 8 then served in 32.5 (the batch of 4 at 17.2, as
// ever): the profile, which every decision reads, was 35 % slow at one
// batch size. Interleaved, a slow spell falls on every batch size alike,
// and a median stays where it was. So that the spell falls on each batch
// size's runs in the same proportion, all of them should end together:
// each turn gives a batch size runs in proportion to how many it will
// have (expected), the one with the fewest getting one.
func timeInterleaved(sizes []int, est []float64, job Job, plan *profilePlan, run func(k int) (time.Duration, error)) ([][]float64, error) {
	soft, hard := plan.shares(sizes, est)
	lats := make([][]float64, len(sizes))
	spent := make([]time.Duration, len(sizes))
	checked := make([]int, len(sizes))
	active := make([]bool, len(sizes))
	perTurn := make([]int, len(sizes))
	fewest := math.Inf(1)
	for k := range sizes {
		active[k] = true
		fewest = min(fewest, expectedRuns(est[k], soft[k], hard[k], job))
	}
	for k := range sizes {
		perTurn[k] = max(1, int(math.Round(expectedRuns(est[k], soft[k], hard[k], job)/fewest)))
	}
	for left := len(sizes); left > 0; {
		for k := range sizes {
			if !active[k] {
				continue
			}
			for range perTurn[k] {
				d, err := run(k)
				if err != nil {
					return nil, err
				}
				lats[k], spent[k] = append(lats[k], ms(d)), spent[k]+d
				if len(lats[k]) >= job.MaxIters {
					break
				}
			}
			n := len(lats[k])
			stop := n >= job.MaxIters
			if !stop && n >= job.MinIters && (spent[k] >= soft[k] || n-checked[k] >= 25) {
				checked[k] = n
				stop = done(lats[k], spent[k], soft[k], hard[k])
			}
			if stop {
				active[k] = false
				left--
			}
		}
	}
	for k, b := range sizes {
		if len(lats[k]) < MinRuns {
			plan.few = append(plan.few, b)
		}
	}
	return lats, nil
}

// expectedRuns is how many runs of estMs each done lets a batch size have
// with those shares (unless its p99 is pinned before): until the hard
// share is spent, or the soft share with MinRuns runs; at least MinIters,
// at most MaxIters.
func expectedRuns(estMs float64, soft, hard time.Duration, job Job) float64 {
	per := max(estMs, 1e-6) * float64(time.Millisecond)
	n := min(float64(hard)/per, max(float64(soft)/per, MinRuns))
	return min(max(n, float64(job.MinIters), 1), float64(max(job.MaxIters, 1)))
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
