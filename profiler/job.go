package profiler

import (
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
)

// Job kinds.
const (
	KindInspect  = "inspect"  // load the model, report its input and output
	KindOptimize = "optimize" // write ONNX Runtime's optimised graph
	KindProfile  = "profile"  // measure a variant
)

// Job is what the parent asks a child to do. Paths name files the parent
// wrote into a private temporary directory.
type Job struct {
	Kind      string           `json:"kind"`
	ModelPath string           `json:"model_path"`
	Options   executor.Options `json:"options"`

	// Optimize: where to write the optimised graph.
	OutPath string `json:"out_path,omitempty"`

	// Profile: batch sizes to measure, ascending, and the measurement budget.
	Batches  []int `json:"batches,omitempty"`
	Warmup   int   `json:"warmup,omitempty"`
	MinIters int   `json:"min_iters,omitempty"`
	MaxIters int   `json:"max_iters,omitempty"`
	// Budget is the base time for timing all batch sizes (each size's
	// soft share), MaxBudget its cap (each size's hard share); the child
	// leaves out the largest batch sizes that cannot have MinIters runs
	// in what is left of the cap (profilePlan; Result.Note says so).
	Budget    time.Duration `json:"budget,omitempty"`
	MaxBudget time.Duration `json:"max_budget,omitempty"`
	// Inputs are the sample inputs: Samples samples of each input of the
	// contract, one file per input holding them back to back as raw
	// little-endian bytes, each sample of shape Shapes[i] (without the
	// batch dimension when Batched; a batch of b concatenates b samples).
	// An unbatched model is profiled at batch 1 only.
	Inputs  []string  `json:"inputs,omitempty"`
	Shapes  [][]int64 `json:"shapes,omitempty"`
	Batched bool      `json:"batched,omitempty"`
	Samples int       `json:"samples,omitempty"`
	// Labels, when set, make the child measure top-1 accuracy of the
	// first output over all samples.
	Labels []int `json:"labels,omitempty"`
	// ReferencePath, when set, names the fp32 graph the variant's outputs
	// are compared with on every sample (its fidelity).
	ReferencePath string `json:"reference_path,omitempty"`

	// Fresh makes a profile job measure even when the profile cache
	// holds the same job's result (and replace that result). The parent's
	// concern: never sent to the child, not part of the cache key.
	Fresh bool `json:"-"`
}

// Result is a child's answer.
type Result struct {
	Error string      `json:"error,omitempty"`
	IO    executor.IO `json:"io"`

	LoadMs  float64                 `json:"load_ms,omitempty"`
	Latency map[int]catalog.Latency `json:"latency,omitempty"`
	// PeakMemory is, per batch size, the child's peak resident memory above
	// its baseline (ONNX Runtime initialised, inputs read, no session yet)
	// after running every batch size up to that one, less the Go runtime's
	// own growth meanwhile (the child's, not the model's).
	PeakMemory map[int]int64     `json:"peak_memory,omitempty"`
	Accuracy   *float64          `json:"accuracy,omitempty"`
	Fidelity   *catalog.Fidelity `json:"fidelity,omitempty"`
	// Note says which batch sizes the budget left out and why.
	Note     string `json:"note,omitempty"`
	Hardware string `json:"hardware,omitempty"`

	// Reused: the profile cache answered the job; MeasuredAt is when the
	// result was measured (set by the parent with a cache, zero without).
	Reused     bool      `json:"reused,omitempty"`
	MeasuredAt time.Time `json:"measured_at,omitempty"`
}
