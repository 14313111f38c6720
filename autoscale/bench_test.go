package autoscale

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
)

// BenchmarkModelsStep is one model-autoscaler step over a large cluster:
// archs architectures of 8 variants each, 50 workers, two replicas per
// architecture with demand near capacity on a tenth of them. reindex=false
// is the usual step, over a catalog unchanged since the last (same
// State.Epoch); reindex=true re-indexes the catalog as after a
// registration.
//
//	go test -run '^$' -bench ModelsStep -benchmem ./autoscale
func BenchmarkModelsStep(b *testing.B) {
	for _, bc := range []struct {
		archs   int
		reindex bool
	}{{10, false}, {100, false}, {100, true}} {
		archs := bc.archs
		b.Run(fmt.Sprintf("archs=%d/reindex=%v", archs, bc.reindex), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			st := State{Classes: []catalog.HardwareClass{catalog.CPUClass(1), catalog.CPUClass(4)}, Traffic: map[string]Traffic{}}
			for i := range 50 {
				h := st.Classes[i%2]
				st.Workers = append(st.Workers, Worker{ID: fmt.Sprintf("w%02d", i), Class: h.Name, Cores: h.Cores, MemoryBytes: h.MemoryBytes, FreeMemoryBytes: h.MemoryBytes / 2, Healthy: true})
			}
			for a := range archs {
				arch := fmt.Sprintf("a%03d", a)
				for j := range 8 {
					h := st.Classes[j%2]
					v := variant(fmt.Sprintf("%s.v%d", arch, j), arch, h.Name, 1, []int{1, 8}[j%2], 80+float64(j), 2+r.Float64()*5, 20)
					st.Variants = append(st.Variants, v)
					st.Traffic[v.Name] = Traffic{LatencyMs: 100}
				}
				for k := range 2 {
					w := st.Workers[(2*a+k*2)%50]
					demand := 50.0
					if a%10 == 0 {
						demand = 400
					}
					st.Replicas = append(st.Replicas, Replica{ID: fmt.Sprintf("r%d-%d", a, k), Worker: w.ID, Variant: fmt.Sprintf("%s.v%d", arch, k%2), Demand: demand})
				}
			}
			m, err := NewModels(Config{})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Unix(0, 0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				st.Epoch = 1
				if bc.reindex {
					st.Epoch = uint64(i) + 1
				}
				m.Step(now.Add(time.Duration(i)*time.Millisecond), st)
			}
		})
	}
}
