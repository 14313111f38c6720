package profiler

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/inference"
)

// SampleInputs are N samples of every input of a contract: Data[i] holds
// the N samples of input i back to back, each of shape Shapes[i] (without
// the batch dimension when the contract is batched).
type SampleInputs struct {
	N       int
	Batched bool
	Shapes  [][]int64
	Data    [][]byte
}

// SyntheticInputs makes n deterministic samples of arch's inputs at their
// profile shapes (catalog.Architecture.ProfileShape), for timing a model
// and checking its variants' fidelity when no sample data is at hand:
// floating-point inputs in [0, 1), integer and boolean ones 0 and 1
// alternating (valid as indices, masks and flags alike).
func SyntheticInputs(arch catalog.Architecture, n int) SampleInputs {
	s := SampleInputs{N: n, Batched: arch.Batched}
	for i, t := range arch.Inputs {
		shape := arch.ProfileShape(i, 1)
		if arch.Batched {
			shape = shape[1:]
		}
		elems := int(catalog.Elements(shape)) * n
		size := executor.ElementSize(t.DataType)
		data := make([]byte, elems*size)
		for k := range elems {
			switch t.DataType {
			case "FP32":
				binary.LittleEndian.PutUint32(data[4*k:], math.Float32bits(float32((k*7919)%1000)/1000))
			case "FP64":
				binary.LittleEndian.PutUint64(data[8*k:], math.Float64bits(float64((k*7919)%1000)/1000))
			case "FP16", "BF16":
				// zeros: exact in every 16-bit format
			default:
				data[k*size] = byte(k % 2) // little-endian 0 or 1
			}
		}
		s.Shapes = append(s.Shapes, shape)
		s.Data = append(s.Data, data)
	}
	return s
}

// Write stores the samples in wd and returns a Job with them set.
func (s SampleInputs) Write(wd *Workdir, job Job) (Job, error) {
	job.Inputs = nil
	for i, d := range s.Data {
		p, err := wd.Write(fmt.Sprintf("input-%d.bin", i), d)
		if err != nil {
			return job, err
		}
		job.Inputs = append(job.Inputs, p)
	}
	job.Shapes, job.Batched, job.Samples = s.Shapes, s.Batched, s.N
	return job, nil
}

// batch builds the input tensors of b samples starting at sample off
// (wrapping around), reusing bufs.
func (s SampleInputs) batch(b, off int, bufs [][]byte) []inference.Tensor {
	ts := make([]inference.Tensor, len(s.Data))
	for i, d := range s.Data {
		per := len(d) / s.N
		buf := bufs[i][:0]
		for k := range b {
			j := (off + k) % s.N
			buf = append(buf, d[j*per:(j+1)*per]...)
		}
		bufs[i] = buf
		shape := s.Shapes[i]
		if s.Batched {
			shape = append([]int64{int64(b)}, shape...)
		}
		ts[i] = inference.Tensor{Shape: shape, Data: buf}
	}
	return ts
}

// prefix is the first b samples of ts, a batch that batch built at
// offset 0 (any smaller batch from offset 0 is its prefix), sharing its
// memory.
func (s SampleInputs) prefix(ts []inference.Tensor, b int) []inference.Tensor {
	out := make([]inference.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t
		if s.Batched {
			out[i].Shape = append([]int64{int64(b)}, t.Shape[1:]...)
			out[i].Data = t.Data[:b*(len(s.Data[i])/s.N)]
		}
	}
	return out
}

// readInputs loads a job's sample inputs.
func readInputs(job Job, read func(string) ([]byte, error)) (SampleInputs, error) {
	s := SampleInputs{N: job.Samples, Batched: job.Batched, Shapes: job.Shapes}
	if len(job.Inputs) != len(job.Shapes) || job.Samples <= 0 {
		return s, fmt.Errorf("job has %d input files, %d shapes and %d samples", len(job.Inputs), len(job.Shapes), job.Samples)
	}
	for i, p := range job.Inputs {
		d, err := read(p)
		if err != nil {
			return s, err
		}
		if len(d)%job.Samples != 0 {
			return s, fmt.Errorf("input file %d holds %d bytes, not a whole number of %d samples", i, len(d), job.Samples)
		}
		s.Data = append(s.Data, d)
	}
	return s, nil
}
