package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"time"
)

// RequirementSet is one kind of request in a mix: a model (a variant, an
// architecture, or a use case written task/dataset or task.dataset), the
// requirements it states and its batch size, drawn with probability
// proportional to Weight.
type RequirementSet struct {
	Weight      float64 `json:"weight"`
	Model       string  `json:"model"`
	LatencyMs   float64 `json:"latency_ms,omitempty"`   // target; 0: none (never a violation)
	MinAccuracy float64 `json:"min_accuracy,omitempty"` // percent
	MaxCost     float64 `json:"max_cost,omitempty"`     // USD per 1,000 queries
	Strict      bool    `json:"strict,omitempty"`
	Batch       int     `json:"batch,omitempty"` // 0: 1
	// Shapes gives, per input name, the shape of one sample (the batch
	// dimension left out) the load generator sends where the model leaves
	// dimensions dynamic: a positive size fills a dynamic dimension, and
	// must equal a fixed one. Dynamic dimensions it does not fill take
	// catalog.DefaultDynamicDim, the size profiling gives them by default.
	Shapes map[string][]int64 `json:"shapes,omitempty"`
}

// Target is the set's latency target, 0 for none.
func (s RequirementSet) Target() time.Duration {
	return time.Duration(s.LatencyMs * float64(time.Millisecond))
}

// BatchSize is the number of samples each request carries (at least 1).
func (s RequirementSet) BatchSize() int { return max(s.Batch, 1) }

// Label names the set in reports: model, then its requirements.
func (s RequirementSet) Label() string {
	l := s.Model
	if s.LatencyMs > 0 {
		l += fmt.Sprintf(" ≤%gms", s.LatencyMs)
	}
	if s.MinAccuracy > 0 {
		l += fmt.Sprintf(" ≥%g%%", s.MinAccuracy)
	}
	if s.MaxCost > 0 {
		l += fmt.Sprintf(" ≤$%g/1k", s.MaxCost)
	}
	if s.Strict {
		l += " strict"
	}
	if s.Batch > 1 {
		l += fmt.Sprintf(" b%d", s.Batch)
	}
	return l
}

// Validate checks one set.
func (s RequirementSet) Validate() error {
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case s.Model == "":
		return errors.New("no model; name a variant, an architecture or a use case (task/dataset)")
	case !finite(s.Weight) || s.Weight < 0:
		return fmt.Errorf("%s: weight %g must be a non-negative number", s.Model, s.Weight)
	case !finite(s.LatencyMs) || s.LatencyMs < 0:
		return fmt.Errorf("%s: latency_ms %g must be a non-negative number of milliseconds", s.Model, s.LatencyMs)
	case !finite(s.MinAccuracy) || s.MinAccuracy < 0 || s.MinAccuracy > 100:
		return fmt.Errorf("%s: min_accuracy %g must be a percentage between 0 and 100", s.Model, s.MinAccuracy)
	case !finite(s.MaxCost) || s.MaxCost < 0:
		return fmt.Errorf("%s: max_cost %g must be a non-negative cost", s.Model, s.MaxCost)
	case s.Batch < 0:
		return fmt.Errorf("%s: batch %d must be positive", s.Model, s.Batch)
	}
	for name, shape := range s.Shapes {
		for _, d := range shape {
			if d <= 0 || d > 1<<24 {
				return fmt.Errorf("%s: shape of input %q %v: every dimension must be a positive size (at most %d)", s.Model, name, shape, 1<<24)
			}
		}
	}
	return nil
}

// Mix is a weighted list of requirement sets.
type Mix []RequirementSet

// Validate checks every set and that the weights add up to more than 0.
func (m Mix) Validate() error {
	if len(m) == 0 {
		return errors.New("the mix is empty; give at least one requirement set")
	}
	total := 0.0
	for i, s := range m {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("set %d: %w", i, err)
		}
		total += s.Weight
	}
	if total <= 0 {
		return errors.New("the mix's weights add up to 0; give some set a positive weight")
	}
	return nil
}

// Tightest is the smallest latency target of the mix, 0 if none has one.
func (m Mix) Tightest() time.Duration {
	var t time.Duration
	for _, s := range m {
		if d := s.Target(); d > 0 && (t == 0 || d < t) {
			t = d
		}
	}
	return t
}

// ReadMix reads a mix from a JSON file: a list of requirement sets. A set
// without a weight weighs 1.
func ReadMix(path string) (Mix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseMix(data)
}

func parseMix(data []byte) (Mix, error) {
	var raw []struct {
		RequirementSet
		Weight *float64 `json:"weight"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("want a JSON list of {\"weight\", \"model\", \"latency_ms\", \"min_accuracy\", \"max_cost\", \"strict\", \"batch\"}: %w", err)
	}
	m := make(Mix, len(raw))
	for i, r := range raw {
		m[i] = r.RequirementSet
		m[i].Weight = 1
		if r.Weight != nil {
			m[i].Weight = *r.Weight
		}
	}
	return m, m.Validate()
}

// Picker draws set indexes in proportion to their weights.
type Picker struct {
	cum []float64 // cumulative weights
}

func NewPicker(m Mix) Picker {
	p := Picker{cum: make([]float64, len(m))}
	total := 0.0
	for i, s := range m {
		total += s.Weight
		p.cum[i] = total
	}
	return p
}

func (p Picker) Pick(rng *rand.Rand) int {
	if len(p.cum) == 1 {
		return 0
	}
	x := rng.Float64() * p.cum[len(p.cum)-1]
	i := sort.SearchFloat64s(p.cum, x)
	// SearchFloat64s finds the first cum ≥ x; x == cum[i] belongs to the next set
	// unless that one weighs 0.
	for i < len(p.cum)-1 && p.cum[i] <= x {
		i++
	}
	return i
}
