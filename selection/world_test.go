package selection

import (
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
)

// A small hand-made world for the table tests:
//
//	use case classification/mnist
//	  mlp-s  92%    mlp-s.cpu.t1.b8     p99 0.1 ms (b1) .. 0.5 ms (b8)   cheapest
//	  cnn-m  98.5%  cnn-m.cpu.t2.b8     p99 1 ms .. 4 ms
//	                cnn-m.cpu.t8.b32    p99 0.5 ms .. 6 ms (b32)
//	  cnn-l  99.2%  cnn-l.cpu.t4.b8     p99 8 ms .. 30 ms                dearest
//	                cnn-l.gpu.b64       p99 2 ms .. 5 ms (b64), cuda
//	workers w1 cpu (util 50%), w2 cpu (util 10%), w3 gpu (util 20%)
//	replicas r-m2 = cnn-m.cpu.t2.b8 on w1, r-l4 = cnn-l.cpu.t4.b8 on w2

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const gib64 = int64(1) << 30

var (
	cpuClass = catalog.HardwareClass{Name: "cpu", Provider: "cpu", Cores: 8, MemoryBytes: 16 * gib64, PricePerHour: 0.384}
	gpuClass = catalog.HardwareClass{Name: "gpu", Provider: "cuda", Cores: 8, MemoryBytes: 32 * gib64, PricePerHour: 3.06}
)

const (
	mlpS  = "mlp-s.cpu.t1.b8"
	cnnM2 = "cnn-m.cpu.t2.b8"
	cnnM8 = "cnn-m.cpu.t8.b32"
	cnnL4 = "cnn-l.cpu.t4.b8"
	cnnLG = "cnn-l.gpu.b64"
)

func mkVariant(name, arch string, hw catalog.HardwareClass, threads, maxBatch int, acc, p1, pMax, thr, loadMs float64, mem int64) catalog.Variant {
	lat := map[int]catalog.Latency{1: {P50: p1 / 2, P99: p1}}
	lat[maxBatch] = catalog.Latency{P50: pMax / 2, P99: pMax}
	return catalog.Variant{
		Name: name, Architecture: arch, Precision: "fp32", OptLevel: "all",
		Provider: hw.Provider, Hardware: hw.Name, Threads: threads, MaxBatch: maxBatch,
		Accuracy: acc, AccuracySource: catalog.AccuracyMeasured,
		Profile: catalog.Profile{LoadMs: loadMs, PeakMemoryBytes: mem, LatencyMs: lat, ThroughputQPS: thr},
	}
}

func arch(name string) catalog.Architecture {
	return catalog.Architecture{Name: name, Task: "classification", Dataset: "mnist", State: catalog.StateReady}
}

func mnistCatalog() Catalog {
	return Catalog{
		Architectures: []catalog.Architecture{arch("mlp-s"), arch("cnn-m"), arch("cnn-l")},
		Variants: []catalog.Variant{
			mkVariant(mlpS, "mlp-s", cpuClass, 1, 8, 92, 0.1, 0.5, 20000, 50, 64<<20),
			mkVariant(cnnM2, "cnn-m", cpuClass, 2, 8, 98.5, 1, 4, 2500, 100, 256<<20),
			mkVariant(cnnM8, "cnn-m", cpuClass, 8, 32, 98.5, 0.5, 6, 6000, 120, 512<<20),
			mkVariant(cnnL4, "cnn-l", cpuClass, 4, 8, 99.2, 8, 30, 300, 400, 1*gib64),
			mkVariant(cnnLG, "cnn-l", gpuClass, 1, 64, 99.2, 2, 5, 15000, 2000, 2*gib64),
		},
		Classes: []catalog.HardwareClass{cpuClass, gpuClass},
	}
}

func worker(id string, hw catalog.HardwareClass, util float64, free int64) Worker {
	return Worker{ID: id, Class: hw, MemoryBytes: hw.MemoryBytes, FreeMemoryBytes: free, Utilization: util, Healthy: true}
}

func replica(id, variant, worker string) Replica {
	return Replica{ID: id, Variant: variant, Worker: worker, Healthy: true}
}

func mnistState() State {
	return State{
		Workers: []Worker{
			worker("w1", cpuClass, 0.5, 8*gib64),
			worker("w2", cpuClass, 0.1, 8*gib64),
			worker("w3", gpuClass, 0.2, 16*gib64),
		},
		Replicas: []Replica{
			replica("r-m2", cnnM2, "w1"),
			replica("r-l4", cnnL4, "w2"),
		},
	}
}

func mustSnapshot(t testing.TB, cat Catalog, st State) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(cat, st)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

// edit helpers for table cases

func (st State) with(f func(*State)) State {
	st.Workers = append([]Worker(nil), st.Workers...)
	st.Replicas = append([]Replica(nil), st.Replicas...)
	f(&st)
	return st
}

func (st *State) replica(id string) *Replica {
	for i := range st.Replicas {
		if st.Replicas[i].ID == id {
			return &st.Replicas[i]
		}
	}
	panic("no replica " + id)
}

func (st *State) worker(id string) *Worker {
	for i := range st.Workers {
		if st.Workers[i].ID == id {
			return &st.Workers[i]
		}
	}
	panic("no worker " + id)
}

// view is a Decision with names instead of indexes, for comparisons.
type view struct {
	Action     Action
	Reason     Reason
	Met        bool
	Variant    string
	Replica    string
	Worker     string
	Load       string
	LoadWorker string
	Unplaced   string
}

func viewOf(s *Snapshot, d *Decision) view {
	v := view{Action: d.Action, Reason: d.Reason, Met: d.Met}
	if d.Variant >= 0 {
		v.Variant = s.Variant(d.Variant).Name
	}
	if d.Replica >= 0 {
		v.Replica = s.Replica(d.Replica).ID
	}
	if d.Worker >= 0 {
		v.Worker = s.Worker(d.Worker).ID
	}
	if d.Load >= 0 {
		v.Load = s.Variant(d.Load).Name
	}
	if d.LoadWorker >= 0 {
		v.LoadWorker = s.Worker(d.LoadWorker).ID
	}
	if d.Unplaced >= 0 {
		v.Unplaced = s.Variant(d.Unplaced).Name
	}
	return v
}
