package registrar

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/executor"
	"github.com/infaas/infaas/profiler"
	"github.com/infaas/infaas/repository"
	"github.com/infaas/infaas/variants"
)

// generator derives and profiles one architecture's variants.
type generator struct {
	r   *Registrar
	job *job
}

// graphFile is one derived ONNX graph.
type graphFile struct {
	variants.Graph
	data   []byte
	digest string
}

// run returns the kept variants, the graph files they need, the dropped
// variants with reasons, and the fp32 graph's measured accuracy.
func (g generator) run(ctx context.Context) ([]catalog.Variant, [][]byte, []catalog.DroppedVariant, float64, error) {
	arch, hw := g.job.arch, g.r.cfg.Hardware
	var dropped []catalog.DroppedVariant

	wd, err := profiler.NewWorkdir()
	if err != nil {
		return nil, nil, nil, 0, err
	}
	defer wd.Close()
	origPath, err := wd.Write("original.onnx", g.job.model)
	if err != nil {
		return nil, nil, nil, 0, err
	}

	// 1. Precisions. An int8 graph is kept only if it stays faithful to
	// the fp32 one (checked once profiled).
	g.job.update(func(s *Status) { s.Phase = "quantising" })
	sources := map[string]string{variants.FP32: origPath}
	int8OK := false
	{
		var q []byte
		var rep variants.QuantizeReport
		err := g.r.contain("int8 quantisation", func() (err error) {
			q, rep, err = variants.QuantizeDynamic(g.job.model)
			return err
		})
		if err != nil {
			dropped = append(dropped, catalog.DroppedVariant{Name: arch.Name + "." + variants.INT8 + ".*", Reason: "int8 not generated: " + err.Error()})
			goto optimise
		}
		p, err := wd.Write("int8.onnx", q)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		sources[variants.INT8] = p
		int8OK = true
		g.r.log.Debug("quantised", "architecture", arch.Name, "report", fmt.Sprintf("%+v", rep))
	}
optimise:

	// 2. Graph optimisation levels, each written by ONNX Runtime.
	threads := variants.ThreadCounts(hw.Cores)
	batches := variants.MaxBatches(int64(arch.FixedBatch()))
	if !arch.Batched {
		batches = []int{1}
	}
	planned := variants.Graphs(int8OK)
	g.job.update(func(s *Status) { s.Phase, s.Done, s.Total = "optimising graphs", 0, len(planned)*(1+len(threads)) })

	var graphs []graphFile
	seen := map[string]string{}
	for _, pg := range planned {
		out := wd.Dir + "/" + pg.Precision + "." + pg.OptLevel + ".onnx"
		_, err := g.r.prof.Run(ctx, profiler.Job{Kind: profiler.KindOptimize, ModelPath: sources[pg.Precision],
			Options: optionsFor(pg.OptLevel, 1, hw.Provider), OutPath: out})
		g.job.update(func(s *Status) { s.Done++ })
		name := fmt.Sprintf("%s.%s.%s.*", arch.Name, pg.Precision, pg.OptLevel)
		if err != nil {
			if pg.Precision == variants.FP32 {
				return nil, nil, nil, 0, fmt.Errorf("%w: optimising at level %s: %v", ErrRejected, pg.OptLevel, err)
			}
			dropped = append(dropped, catalog.DroppedVariant{Name: name, Reason: "ONNX Runtime could not optimise it: " + err.Error()})
			g.job.update(func(s *Status) { s.Done += len(threads) })
			continue
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		d := repository.Digest(data)
		if first, ok := seen[d]; ok {
			dropped = append(dropped, catalog.DroppedVariant{Name: name, Reason: "identical graph to " + first + ": the optimisation level changed nothing more"})
			g.job.update(func(s *Status) { s.Done += len(threads) })
			continue
		}
		seen[d] = name
		graphs = append(graphs, graphFile{Graph: pg, data: data, digest: d})
	}

	// 3. Profile every graph at every thread count; accuracy once per graph.
	var inputs profiler.SampleInputs
	var labels []int
	if set := g.job.set; set != nil {
		inputs = profiler.SampleInputs{N: set.N, Batched: true, Shapes: [][]int64{arch.Sample(arch.Inputs[0])},
			Data: [][]byte{set.FP32(arch.InputScale)}}
		labels = set.Labels
	} else {
		// No validation data: time the model, and check its variants'
		// fidelity, on deterministic synthetic inputs of the contract.
		inputs = profiler.SyntheticInputs(arch, 32)
	}
	sampleJob, err := inputs.Write(wd, profiler.Job{Kind: profiler.KindProfile})
	if err != nil {
		return nil, nil, nil, 0, err
	}
	maxLoss := g.r.cfg.MaxFidelityLoss
	if maxLoss <= 0 {
		maxLoss = DefaultMaxFidelityLoss
	}
	g.job.update(func(s *Status) { s.Phase = "profiling variants" })
	var candidates []variants.Costed
	var fp32Accuracy float64
	blobByDigest := map[string][]byte{}
	for _, gf := range graphs {
		gpath, err := wd.Write("graph-"+gf.Precision+"-"+gf.OptLevel+".onnx", gf.data)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		blobByDigest[gf.digest] = gf.data
		accuracy, accSource := arch.Accuracy, arch.AccuracySource
		var fid *catalog.Fidelity
		for ti, t := range threads {
			job := sampleJob
			job.ModelPath, job.Options, job.Batches = gpath, optionsFor(gf.OptLevel, t, hw.Provider), batches
			job.Fresh = g.job.reprofile
			if ti == 0 {
				job.Labels = labels
				job.ReferencePath = origPath
			}
			res, err := g.r.prof.Run(ctx, job)
			g.job.update(func(s *Status) {
				s.Done++
				if res.Reused {
					s.Reused++
				}
			})
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return nil, nil, nil, 0, err
				}
				dropped = append(dropped, catalog.DroppedVariant{Name: fmt.Sprintf("%s.%s.%s.t%d.*", arch.Name, gf.Precision, gf.OptLevel, t),
					Reason: "profiling failed: " + err.Error()})
				continue
			}
			if res.Accuracy != nil {
				accuracy, accSource = *res.Accuracy, catalog.AccuracyMeasured
				if gf.Precision == variants.FP32 && fp32Accuracy == 0 {
					fp32Accuracy = accuracy
				}
			}
			if res.Fidelity != nil {
				fid = res.Fidelity
				if res.Accuracy == nil && accSource != catalog.AccuracyUnknown {
					// Without labels, a variant is as accurate as the
					// architecture less what it loses against fp32.
					accuracy = max(arch.Accuracy-fid.Loss(), 0)
				}
			}
			if ti == 0 && gf.Precision != variants.FP32 {
				if loss := int8Loss(res, fp32Accuracy); loss > maxLoss {
					dropped = append(dropped, catalog.DroppedVariant{Name: fmt.Sprintf("%s.%s.%s.*", arch.Name, gf.Precision, gf.OptLevel),
						Reason: fmt.Sprintf("loses %.2f accuracy points against fp32, more than the %.2f allowed", loss, maxLoss)})
					g.job.update(func(s *Status) { s.Done += len(threads) - 1 })
					break
				}
			}
			// When it was measured: a reused profile keeps its time.
			measured := g.r.now()
			if !res.MeasuredAt.IsZero() {
				measured = res.MeasuredAt
			}
			for _, mb := range batches {
				if _, ok := res.Latency[mb]; !ok {
					if ti == 0 && mb == batches[len(batches)-1] {
						dropped = append(dropped, catalog.DroppedVariant{Name: fmt.Sprintf("%s.%s.%s.*", arch.Name, gf.Precision, gf.OptLevel),
							Reason: "some max batch sizes not generated: " + res.Note})
					}
					continue
				}
				v := catalog.Variant{
					Name:         catalog.VariantName(arch.Name, gf.Precision, gf.OptLevel, t, mb, hw.Provider),
					Architecture: arch.Name, Precision: gf.Precision, OptLevel: gf.OptLevel,
					Provider: hw.Provider, Hardware: hw.Name, Threads: t, MaxBatch: mb,
					FileDigest: gf.digest, FileBytes: int64(len(gf.data)),
					Accuracy: accuracy, AccuracySource: accSource, Fidelity: fid,
					Profile: profiler.VariantProfile(res, mb, measured),
				}
				candidates = append(candidates, variants.Costed{Variant: v, CostPerHour: hw.CostPerHour(t)})
			}
		}
	}
	if len(candidates) == 0 {
		return nil, nil, nil, 0, fmt.Errorf("%w: no variant could be profiled (see the server log)", ErrRejected)
	}

	kept, pruned := variants.Prune(candidates, variants.DefaultTolerance)
	dropped = append(dropped, pruned...)
	out := make([]catalog.Variant, len(kept))
	var blobs [][]byte
	need := map[string]bool{}
	for i, k := range kept {
		out[i] = k.Variant
		if !need[k.FileDigest] {
			need[k.FileDigest] = true
			blobs = append(blobs, blobByDigest[k.FileDigest])
		}
	}
	return out, blobs, dropped, fp32Accuracy, nil
}

func optionsFor(level string, threads int, provider string) executor.Options {
	return executor.Options{OptLevel: level, Threads: threads, Provider: provider}
}

// int8Loss is what a quantised graph loses against fp32, in accuracy
// points: measured on validation data when there is some (fp32 is profiled
// first), else its fidelity's loss.
func int8Loss(res profiler.Result, fp32Accuracy float64) float64 {
	if res.Accuracy != nil && fp32Accuracy > 0 {
		return max(fp32Accuracy-*res.Accuracy, 0)
	}
	if res.Fidelity != nil {
		return res.Fidelity.Loss()
	}
	return 0
}
