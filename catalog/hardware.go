package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
)

// HardwareClass is a kind of worker with a price (INFaaS "instance type").
type HardwareClass struct {
	Name     string `json:"name"`
	Provider string `json:"provider"` // execution provider: cpu, cuda
	// Cores a worker of this class may use: its CPU affinity on one
	// machine, its CPU request in a cluster. Replicas' intra-op threads
	// never exceed it.
	Cores        int   `json:"cores"`
	MemoryBytes  int64 `json:"memory_bytes"`
	Accelerators int   `json:"accelerators,omitempty"` // GPUs (or other devices) per worker
	// PricePerHour is what one worker of this class costs, USD.
	PricePerHour float64 `json:"price_per_hour"`
}

// CostPerHour is what a variant costs per hour on class h: a CPU variant
// pays for the cores its threads occupy, an accelerator variant for the
// whole device.
func (h HardwareClass) CostPerHour(threads int) float64 {
	if h.Provider != "cpu" || h.Cores <= 0 {
		return h.PricePerHour
	}
	t := min(max(threads, 1), h.Cores)
	return h.PricePerHour * float64(t) / float64(h.Cores)
}

// CostPerQuery is the cost in USD of one inference at throughput qps when
// the variant is kept busy.
func (h HardwareClass) CostPerQuery(threads int, qps float64) float64 {
	if qps <= 0 {
		return 0
	}
	return h.CostPerHour(threads) / 3600 / qps
}

// Validate checks that a class can describe real workers.
func (h HardwareClass) Validate() error {
	switch {
	case ValidateName("hardware class", h.Name) != nil:
		return ValidateName("hardware class", h.Name)
	case h.Provider != "cpu" && h.Provider != "cuda":
		return fmt.Errorf("hardware class %s: provider %q: want cpu or cuda", h.Name, h.Provider)
	case h.Cores <= 0:
		return fmt.Errorf("hardware class %s: cores must be positive, got %d", h.Name, h.Cores)
	case h.MemoryBytes <= 0:
		return fmt.Errorf("hardware class %s: memory_bytes must be positive, got %d", h.Name, h.MemoryBytes)
	case h.PricePerHour < 0:
		return fmt.Errorf("hardware class %s: price_per_hour must not be negative, got %v", h.Name, h.PricePerHour)
	case h.Provider == "cuda" && h.Accelerators <= 0:
		return fmt.Errorf("hardware class %s: a cuda class needs accelerators ≥ 1", h.Name)
	}
	return nil
}

// CPUPricePerCoreHour prices a CPU core like a general-purpose cloud vCPU
// (AWS m5: $0.384/h for 8 vCPUs).
const CPUPricePerCoreHour = 0.048

// CPUMemoryPerCore is the memory a CPU class gets per core (m5: 4 GiB).
const CPUMemoryPerCore = 4 << 30

// CPUClass is the CPU class with n cores: "cpu-N", priced per core.
func CPUClass(n int) HardwareClass {
	return HardwareClass{
		Name:         fmt.Sprintf("cpu-%d", n),
		Provider:     "cpu",
		Cores:        n,
		MemoryBytes:  int64(n) * CPUMemoryPerCore,
		PricePerHour: CPUPricePerCoreHour * float64(n),
	}
}

// LocalCPU is the hardware class of this whole machine's CPU.
func LocalCPU() HardwareClass { return CPUClass(runtime.NumCPU()) }

// DefaultClasses is the built-in hardware catalogue: CPU classes of 1, 2,
// 4, 8 and 16 cores (and this machine's core count if it is none of
// those), and one V100 GPU class at the paper's p3.2xlarge price.
func DefaultClasses() []HardwareClass {
	var out []HardwareClass
	for _, n := range []int{1, 2, 4, 8, 16} {
		out = append(out, CPUClass(n))
	}
	if n := runtime.NumCPU(); !slices.ContainsFunc(out, func(h HardwareClass) bool { return h.Cores == n }) {
		out = append(out, CPUClass(n))
	}
	out = append(out, HardwareClass{Name: "gpu-v100", Provider: "cuda", Cores: 8, MemoryBytes: 16 << 30,
		Accelerators: 1, PricePerHour: 3.06})
	return out
}

// classFile is the hardware catalogue file's shape.
type classFile struct {
	Classes []HardwareClass `json:"classes"`
}

// LoadClasses reads a hardware catalogue file — JSON
// {"classes": [{"name": "cpu-1", "provider": "cpu", "cores": 1,
// "memory_bytes": 4294967296, "price_per_hour": 0.048}, ...]} — and
// validates it. The file replaces the built-in catalogue; an empty path
// returns DefaultClasses.
func LoadClasses(path string) ([]HardwareClass, error) {
	if path == "" {
		return DefaultClasses(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hardware catalogue: %w", err)
	}
	var f classFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("hardware catalogue %s: %w", path, err)
	}
	if err := ValidateClasses(f.Classes); err != nil {
		return nil, fmt.Errorf("hardware catalogue %s: %w", path, err)
	}
	return f.Classes, nil
}

// ValidateClasses checks every class and that names are unique.
func ValidateClasses(cs []HardwareClass) error {
	if len(cs) == 0 {
		return errors.New("no hardware classes")
	}
	seen := map[string]bool{}
	for _, h := range cs {
		if err := h.Validate(); err != nil {
			return err
		}
		if seen[h.Name] {
			return fmt.Errorf("hardware class %s is listed twice", h.Name)
		}
		seen[h.Name] = true
	}
	return nil
}

// FindClass returns the class named name.
func FindClass(cs []HardwareClass, name string) (HardwareClass, bool) {
	i := slices.IndexFunc(cs, func(h HardwareClass) bool { return h.Name == name })
	if i < 0 {
		return HardwareClass{}, false
	}
	return cs[i], true
}

// ClassNames lists the classes' names in order.
func ClassNames(cs []HardwareClass) []string {
	out := make([]string, len(cs))
	for i, h := range cs {
		out[i] = h.Name
	}
	return out
}
