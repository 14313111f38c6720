package catalog

import (
	"fmt"
	"runtime"
)

// HardwareClass is a kind of worker with a price (INFaaS "instance type").
type HardwareClass struct {
	Name         string  `json:"name"`
	Provider     string  `json:"provider"` // execution provider: cpu, cuda
	Cores        int     `json:"cores"`
	MemoryBytes  int64   `json:"memory_bytes"`
	PricePerHour float64 `json:"price_per_hour"` // USD, whole worker
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

// CPUPricePerCoreHour prices a CPU core like a general-purpose cloud vCPU.
const CPUPricePerCoreHour = 0.048

// LocalCPU is the hardware class of this machine's CPU.
func LocalCPU() HardwareClass {
	n := runtime.NumCPU()
	return HardwareClass{
		Name:         fmt.Sprintf("cpu-%d", n),
		Provider:     "cpu",
		Cores:        n,
		PricePerHour: CPUPricePerCoreHour * float64(n),
	}
}
