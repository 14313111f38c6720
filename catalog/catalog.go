package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Accuracy sources: every accuracy shown says where it came from.
const (
	AccuracyMeasured = "measured" // top-1 on the registered validation set
	AccuracyDeclared = "declared" // given by the user, no validation data
	AccuracyUnknown  = "unknown"  // neither: queries with a min_accuracy skip it
)

// Architecture states. A pending architecture is being registered; it is
// invisible to listings and is removed on restart if the registrar died.
const (
	StatePending = "pending"
	StateReady   = "ready"
)

// TensorSpec describes one model input or output. Shape holds -1 for a
// dynamic dimension; DimNames, when the model names them, the symbol of
// each dimension ("batch", "sequence", "" for a fixed one). DataType uses
// the Open Inference Protocol names (FP32, INT64, UINT8, BOOL, ...).
type TensorSpec struct {
	Name     string   `json:"name"`
	DataType string   `json:"datatype"`
	Shape    []int64  `json:"shape"`
	DimNames []string `json:"dim_names,omitempty"`
}

// UseCase is a task on a dataset with one tensor contract that every
// architecture of the use case meets position by position (the INFaaS
// "grandparent"). Its tensor names are those of the first architecture
// registered; queries to the use case use them.
type UseCase struct {
	Task    string `json:"task"`
	Dataset string `json:"dataset"`
	// Contract is what every query of this use case carries and gets
	// back, before an architecture's own preprocessing (for the image
	// zoo: 0–255 pixels).
	Contract
	// Classes is the number of classes of a classifier's score output, or 0.
	Classes int `json:"classes"`
}

// ID names a use case as "task/dataset".
func (u UseCase) ID() string { return UseCaseID(u.Task, u.Dataset) }

// UseCaseID joins a task and a dataset into a use-case ID.
func UseCaseID(task, dataset string) string { return task + "/" + dataset }

// Architecture is one trained model registered by a user (INFaaS "parent").
type Architecture struct {
	Name string `json:"name"`
	// Owner is the tenant that registered it (empty without --auth):
	// only that tenant may delete it.
	Owner   string `json:"owner,omitempty"`
	Task    string `json:"task"`
	Dataset string `json:"dataset"`
	State   string `json:"state"`

	// ModelDigest addresses the uploaded ONNX file in the model repository.
	ModelDigest string `json:"model_digest"`
	ModelBytes  int64  `json:"model_bytes"`

	// Contract is the model's tensors as ONNX Runtime reads them, with
	// the user's overrides (pinned shapes, batch dimension) applied.
	Contract
	// InputScale is the declared preprocessing step: the model's first
	// input (FP32) is the use case's raw input multiplied by InputScale.
	InputScale   float64 `json:"input_scale"`
	DynamicBatch bool    `json:"dynamic_batch"`
	// ProfileShapes gives, per input name, the shape (batch dimension
	// excluded) the profiler and the fidelity check use where the
	// contract leaves dimensions dynamic.
	ProfileShapes map[string][]int64 `json:"profile_shapes,omitempty"`
	// Labels names the classes of the first output, for the Open
	// Inference Protocol classification extension.
	Labels []string `json:"labels,omitempty"`
	// UseCaseMapping says which of its tensors the use case names
	// differently ("input 0 \"Input3\" is \"input\" in the use case"):
	// queries to the use case use the use case's names, and this
	// architecture gets the tensors by position.
	UseCaseMapping []string `json:"use_case_mapping,omitempty"`

	Accuracy       float64 `json:"accuracy"`
	AccuracySource string  `json:"accuracy_source"`
	// ValidationSamples is how many samples the accuracy was measured on.
	ValidationSamples int `json:"validation_samples,omitempty"`

	// Dropped lists generated variants that were not kept, with reasons.
	Dropped      []DroppedVariant `json:"dropped,omitempty"`
	RegisteredAt time.Time        `json:"registered_at"`
}

// UseCaseID is the use case this architecture belongs to.
func (a Architecture) UseCaseID() string { return UseCaseID(a.Task, a.Dataset) }

// DroppedVariant records a generated variant the generator did not keep.
type DroppedVariant struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Variant is one runnable configuration of an architecture.
type Variant struct {
	Name         string `json:"name"`
	Architecture string `json:"architecture"`
	Precision    string `json:"precision"` // fp32, int8
	OptLevel     string `json:"opt_level"` // basic, extended, all
	Provider     string `json:"provider"`  // cpu, cuda
	Hardware     string `json:"hardware"`  // hardware class, e.g. cpu
	Threads      int    `json:"threads"`   // intra-op threads
	MaxBatch     int    `json:"max_batch"` // largest batch it accepts
	FileDigest   string `json:"file_digest"`
	FileBytes    int64  `json:"file_bytes"`

	Accuracy       float64 `json:"accuracy"`
	AccuracySource string  `json:"accuracy_source"`
	// Fidelity is how closely the variant's outputs follow the fp32
	// reference graph's on the sample inputs; nil when not measured.
	Fidelity *Fidelity `json:"fidelity,omitempty"`
	// Profile is the reference profile, measured at registration on
	// hardware class Hardware; dominance pruning used it.
	Profile Profile `json:"profile"`
	// Profiles holds what the variant costs on other hardware classes,
	// keyed by class name, measured later on a worker of each class. The
	// reference class may be listed too; Profile wins for it.
	Profiles map[string]Profile `json:"profiles,omitempty"`
	// KeptBecause says why registration kept the variant although
	// another one dominates it (dominance pruning's reason, e.g. the
	// dominating one cannot serve the largest batch); empty when nothing
	// dominates it.
	KeptBecause string `json:"kept_because,omitempty"`
}

// ProfileOn returns the variant's profile on hardware class class and
// whether it was measured there.
func (v Variant) ProfileOn(class string) (Profile, bool) {
	if class == v.Hardware {
		return v.Profile, true
	}
	p, ok := v.Profiles[class]
	return p, ok
}

// OnClass returns the variant as it runs on hardware class class: Hardware
// is class and Profile its profile there; false when the variant was never
// profiled on class.
func (v Variant) OnClass(class string) (Variant, bool) {
	p, ok := v.ProfileOn(class)
	if !ok {
		return Variant{}, false
	}
	v.Hardware, v.Profile = class, p
	return v, true
}

// ProfiledClasses lists the hardware classes the variant has a profile
// for: the reference class first, then the others by name.
func (v Variant) ProfiledClasses() []string {
	out := []string{v.Hardware}
	rest := make([]string, 0, len(v.Profiles))
	for c := range v.Profiles {
		if c != v.Hardware {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Fidelity compares a variant's outputs with the fp32 reference graph's
// on the same sample inputs.
type Fidelity struct {
	Samples int `json:"samples"`
	// Top1 is the fraction of samples whose argmax of a class-score
	// output ([batch, classes] FP32) agrees; -1 when no output is one.
	Top1 float64 `json:"top1"`
	// MaxRelError and MeanRelError are |variant − reference| ÷ (|reference|
	// + 1e-6), the largest and the mean over all floating-point outputs'
	// elements; Cosine is the lowest cosine similarity of one sample's
	// output with the reference's. Integer outputs count as Mismatch: the
	// fraction of their elements that differ.
	MaxRelError  float64 `json:"max_rel_error"`
	MeanRelError float64 `json:"mean_rel_error"`
	Cosine       float64 `json:"cosine"`
	Mismatch     float64 `json:"mismatch,omitempty"`
}

// Loss is the fidelity's accuracy loss in percentage points: the share of
// top-1 disagreements for a classifier, else 1 − the lowest cosine (and
// the integer mismatches), times 100.
func (f Fidelity) Loss() float64 {
	if f.Top1 >= 0 {
		return 100 * (1 - f.Top1)
	}
	return 100 * max(1-f.Cosine, f.Mismatch, 0)
}

// Profile is what a variant costs, measured by the profiler.
type Profile struct {
	LoadMs          float64 `json:"load_ms"`
	PeakMemoryBytes int64   `json:"peak_memory_bytes"`
	// LatencyMs is keyed by batch size.
	LatencyMs map[int]Latency `json:"latency_ms"`
	// ThroughputQPS is inferences per second at MaxBatch (p50 based).
	ThroughputQPS float64   `json:"throughput_qps"`
	Hardware      string    `json:"hardware"` // what measured it, e.g. "2 cores, AMD EPYC"
	ProfiledAt    time.Time `json:"profiled_at"`
}

// Latency is one batch size's measured latency.
type Latency struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Samples int     `json:"samples"`
	// P99Low and P99High bound the true p99 with 95 % confidence
	// (distribution-free, from the order statistics of the samples); 0 when
	// the samples were too few for a bound. Pruning compares these, not
	// the point estimates, so noise never decides which variants are kept.
	P99Low  float64 `json:"p99_low,omitempty"`
	P99High float64 `json:"p99_high,omitempty"`
	// Spread is the relative spread of the samples: (p99 − p50) ÷ p50.
	Spread float64 `json:"spread,omitempty"`
}

// Batches returns the profiled batch sizes in ascending order.
func (p Profile) Batches() []int {
	out := make([]int, 0, len(p.LatencyMs))
	for b := range p.LatencyMs {
		out = append(out, b)
	}
	sort.Ints(out)
	return out
}

// P99At interpolates the p99 latency (ms) at batch b linearly between the
// profiled batch sizes, extrapolating from the last two beyond the range.
func (p Profile) P99At(b int) float64 {
	return p.at(b, func(l Latency) float64 { return l.P99 })
}

// P50At is P99At for the median.
func (p Profile) P50At(b int) float64 {
	return p.at(b, func(l Latency) float64 { return l.P50 })
}

// ThroughputAt is what one replica sustains at batch b, in samples per
// second: b batches back to back at the median latency (0 when
// unprofiled). The autoscalers' capacity and the profile's ThroughputQPS
// (at the max batch) are this one rule.
func (p Profile) ThroughputAt(b int) float64 {
	if m := p.P50At(b); m > 0 {
		return float64(b) * 1000 / m
	}
	return 0
}

// at interpolates of(latency) at batch b. It scans the map once and
// allocates nothing: selection, the worker's monitor and the autoscalers
// call it on hot paths. Between profiled sizes it interpolates linearly;
// below the smallest it extends the line through the two smallest, above
// the largest the line through the two largest; with one size, it scales
// proportionally.
func (p Profile) at(b int, of func(Latency) float64) float64 {
	if l, ok := p.LatencyMs[b]; ok {
		return of(l)
	}
	// lo: largest size below b; hi: smallest above; s1 < s2 the two
	// smallest sizes, g1 > g2 the two largest.
	lo, hi, s1, s2, g1, g2 := 0, 0, 0, 0, 0, 0
	for x := range p.LatencyMs {
		if x < b && x > lo {
			lo = x
		}
		if x > b && (hi == 0 || x < hi) {
			hi = x
		}
		switch {
		case s1 == 0 || x < s1:
			s1, s2 = x, s1
		case s2 == 0 || x < s2:
			s2 = x
		}
		switch {
		case x > g1:
			g1, g2 = x, g1
		case x > g2:
			g2 = x
		}
	}
	switch {
	case len(p.LatencyMs) == 0:
		return 0
	case len(p.LatencyMs) == 1:
		return of(p.LatencyMs[s1]) * float64(b) / float64(s1)
	case lo == 0:
		lo, hi = s1, s2
	case hi == 0:
		lo, hi = g2, g1
	}
	x0, x1 := float64(lo), float64(hi)
	y0, y1 := of(p.LatencyMs[lo]), of(p.LatencyMs[hi])
	y := y0 + (y1-y0)*(float64(b)-x0)/(x1-x0)
	if y < 0 {
		y = 0
	}
	return y
}

// VariantName composes a variant's name from its settings, e.g.
// "mnist-cnn-m.int8.all.t2.b8.cpu".
func VariantName(arch, precision, opt string, threads, maxBatch int, provider string) string {
	return arch + "." + precision + "." + opt + ".t" + strconv.Itoa(threads) + ".b" + strconv.Itoa(maxBatch) + "." + provider
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ErrBadName is returned by ValidateName.
var ErrBadName = errors.New("invalid name")

// ValidateName checks a user-supplied architecture, task or dataset name: 1–63
// letters, digits, '-' or '_', starting with a letter or digit. Dots are
// reserved for variant names and slashes for use-case IDs, so neither is
// allowed, nor anything that could escape a path.
func ValidateName(kind, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %s %q must be 1–63 letters, digits, '-' or '_', starting with a letter or digit", ErrBadName, kind, s)
	}
	return nil
}
