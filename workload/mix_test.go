package workload

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	m, err := parseMix([]byte(`[
		{"weight": 3, "model": "classification/mnist", "latency_ms": 20, "min_accuracy": 97, "strict": true},
		{"model": "mnist-cnn-m", "max_cost": 0.5, "batch": 4, "shapes": {"ids": [16]}},
		{"weight": 0, "model": "never"}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := Mix{
		{Weight: 3, Model: "classification/mnist", LatencyMs: 20, MinAccuracy: 97, Strict: true},
		{Weight: 1, Model: "mnist-cnn-m", MaxCost: 0.5, Batch: 4, Shapes: map[string][]int64{"ids": {16}}},
		{Weight: 0, Model: "never"},
	}
	if len(m) != len(want) {
		t.Fatalf("got %+v", m)
	}
	for i := range want {
		if !reflect.DeepEqual(m[i], want[i]) {
			t.Errorf("set %d: %+v, want %+v", i, m[i], want[i])
		}
	}
	if got := m.Tightest(); got != 20*time.Millisecond {
		t.Errorf("Tightest() = %v", got)
	}
	for _, bad := range []string{`{"x": [0]}`, `{"x": [-1, 4]}`, `{"x": [99999999]}`} {
		_, err := parseMix([]byte(`[{"weight": 1, "model": "m", "shapes": ` + bad + `}]`))
		if err == nil || !strings.Contains(err.Error(), "positive size") {
			t.Errorf("shapes %s: %v, want refused", bad, err)
		}
	}
}

func TestParseMixErrors(t *testing.T) {
	for name, text := range map[string]string{
		"not a list":     `{"model": "a"}`,
		"unknown field":  `[{"model": "a", "latency": 5}]`,
		"no model":       `[{"weight": 1}]`,
		"empty":          `[]`,
		"all weigh 0":    `[{"model": "a", "weight": 0}]`,
		"negative":       `[{"model": "a", "latency_ms": -1}]`,
		"accuracy > 100": `[{"model": "a", "min_accuracy": 101}]`,
		"negative batch": `[{"model": "a", "batch": -2}]`,
	} {
		if _, err := parseMix([]byte(text)); err == nil {
			t.Errorf("%s: accepted %s", name, text)
		}
	}
}

func TestPickerProportions(t *testing.T) {
	m := Mix{{Weight: 1, Model: "a"}, {Weight: 0, Model: "zero"}, {Weight: 3, Model: "b"}}
	p := NewPicker(m)
	rng := rand.New(rand.NewPCG(9, 9))
	counts := make([]int, len(m))
	const n = 40000
	for range n {
		counts[p.Pick(rng)]++
	}
	if counts[1] != 0 {
		t.Errorf("a set of weight 0 was picked %d times", counts[1])
	}
	// Binomial(40000, 0.25): σ ≈ 87; allow 5σ.
	if counts[0] < 10000-435 || counts[0] > 10000+435 {
		t.Errorf("weights 1:3 picked %v", counts)
	}
}
