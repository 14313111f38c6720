package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/loadgen"
)

func runLoadgen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	server := serverFlag(fs)
	protocol := fs.String("protocol", "http", "`transport`: http (--server) or grpc (--grpc)")
	grpcAddr := fs.String("grpc", "127.0.0.1:8001", "gRPC server `ADDR` (with --protocol grpc)")
	schedule := fs.String("schedule", "constant:10:10s", "rate `schedule`: "+loadgen.ScheduleHelp)
	arrivals := fs.String("arrivals", string(loadgen.Poisson), "arrival `process`: poisson (exponential gaps) or fixed (even gaps)")
	seed := fs.Uint64("seed", 1, "random `seed` of the arrivals, the mix draws and the inputs")
	mixFile := fs.String("mix", "", "requirement mix `file`: a JSON list of {\"weight\", \"model\", \"latency_ms\", \"min_accuracy\", \"max_cost\", \"strict\", \"batch\"}")
	model := fs.String("model", "", "without --mix: the `model` (a variant, an architecture, or a use case task/dataset)")
	latency := fs.Float64("latency-ms", 0, "without --mix: the latency target in `ms` (requests over it are violations)")
	accuracy := fs.Float64("min-accuracy", 0, "without --mix: minimum top-1 accuracy in `percent`")
	cost := fs.Float64("max-cost", 0, "without --mix: cost ceiling in `USD` per 1,000 queries")
	strict := fs.Bool("strict", false, "without --mix: refuse rather than serve best effort")
	batch := fs.Int("batch", 1, "without --mix: samples per request")
	maxInFlight := fs.Int("max-inflight", loadgen.DefaultMaxInFlight, "requests in flight at most; arrivals over it are dropped, never delayed")
	maxRequests := fs.Int("max-requests", 0, "stop after this many arrivals (0: the schedule's end)")
	timeout := fs.Duration("timeout", 0, "per-request timeout (default 10 × the latency target, at least 1s; 10s without a target)")
	quiet := fs.Bool("quiet", false, "no per-second lines")
	csvFile := fs.String("csv", "", "write the per-second rows to this CSV `file`")
	jsonFile := fs.String("json", "", "write the summary to this JSON `file`")
	plotFile := fs.String("plot", "", "draw the run over time in this PNG `file`")
	shapes := shapeFlag{}
	fs.Var(shapes, "shape", "one sample's shape for an input with dynamic dimensions, as `INPUT=D1,D2,...` (the batch left out); repeat per input (default: "+
		fmt.Sprint(catalog.DefaultDynamicDim)+" for each dynamic dimension, as profiling does; with --mix, for sets whose \"shapes\" do not name the input)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; loadgen takes only flags", fs.Args())
	}

	sched, err := loadgen.ParseSchedule(*schedule)
	if err != nil {
		return err
	}
	kind, err := loadgen.ParseArrivalKind(*arrivals)
	if err != nil {
		return err
	}
	var mix loadgen.Mix
	single := *model != "" || *latency != 0 || *accuracy != 0 || *cost != 0 || *strict || *batch != 1
	switch {
	case *mixFile != "" && single:
		return errors.New("give either --mix or the flags of one requirement set (--model, --latency-ms, ...), not both")
	case *mixFile != "":
		if mix, err = loadgen.ReadMix(*mixFile); err != nil {
			return fmt.Errorf("mix %s: %w", *mixFile, err)
		}
	case *model == "":
		return errors.New("name a --model (or give a --mix file)")
	default:
		mix = loadgen.Mix{{Weight: 1, Model: *model, LatencyMs: *latency, MinAccuracy: *accuracy, MaxCost: *cost, Strict: *strict, Batch: *batch}}
	}
	for i := range mix {
		for name, shape := range shapes {
			if _, ok := mix[i].Shapes[name]; !ok {
				if mix[i].Shapes == nil {
					mix[i].Shapes = map[string][]int64{}
				}
				mix[i].Shapes[name] = shape
			}
		}
	}
	if err := mix.Validate(); err != nil {
		return err
	}

	var sender loadgen.Sender
	switch *protocol {
	case "http":
		s := loadgen.NewHTTPSender(*server, *maxInFlight, *seed)
		defer s.Close()
		sender = s
	case "grpc":
		s, err := loadgen.NewGRPCSender(*grpcAddr, *seed)
		if err != nil {
			return err
		}
		defer s.Close()
		sender = s
	default:
		return fmt.Errorf("--protocol %q: use http or grpc", *protocol)
	}

	// Open the outputs first: a path that cannot be written fails before the load.
	outputs := []struct {
		path  string
		write func(io.Writer, loadgen.Summary, []loadgen.Row) error
	}{
		{*csvFile, func(w io.Writer, _ loadgen.Summary, rows []loadgen.Row) error { return loadgen.WriteCSV(w, rows) }},
		{*jsonFile, func(w io.Writer, s loadgen.Summary, _ []loadgen.Row) error { return loadgen.WriteJSON(w, s) }},
		{*plotFile, func(w io.Writer, s loadgen.Summary, rows []loadgen.Row) error { return loadgen.WritePlot(w, rows, s) }},
	}
	files := make([]*os.File, len(outputs))
	for i, o := range outputs {
		if o.path == "" {
			continue
		}
		if files[i], err = os.Create(o.path); err != nil {
			return err
		}
		defer files[i].Close()
	}

	cfg := loadgen.Config{
		Schedule:     sched,
		ScheduleName: *schedule,
		Arrivals:     kind,
		Seed:         *seed,
		Mix:          mix,
		Sender:       sender,
		MaxInFlight:  *maxInFlight,
		MaxRequests:  *maxRequests,
		Timeout:      *timeout,
	}
	if !*quiet {
		lines := 0
		cfg.OnRow = func(r loadgen.Row) {
			if lines%40 == 0 {
				fmt.Fprintln(os.Stderr, loadgen.RowHeader)
			}
			lines++
			fmt.Fprintln(os.Stderr, loadgen.FormatRow(r))
		}
	}
	fmt.Fprintf(os.Stderr, "sending %s (%s arrivals, %v) over %s; Ctrl-C stops early\n",
		*schedule, kind, sched.Duration().Round(time.Millisecond), *protocol)
	sum, rows, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Print(loadgen.FormatSummary(sum))
	for i, o := range outputs {
		if files[i] == nil {
			continue
		}
		if err := o.write(files[i], sum, rows); err != nil {
			return fmt.Errorf("write %s: %w", o.path, err)
		}
		if err := files[i].Close(); err != nil {
			return fmt.Errorf("write %s: %w", o.path, err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", o.path)
	}
	return nil
}

// shapeFlag is --shape INPUT=D1,D2,...: one sample's shape per input name.
type shapeFlag map[string][]int64

func (f shapeFlag) String() string { return "" }

func (f shapeFlag) Set(v string) error {
	name, dims, ok := strings.Cut(v, "=")
	if !ok || name == "" || dims == "" {
		return fmt.Errorf("%q: want INPUT=D1,D2,... (e.g. input_ids=128)", v)
	}
	var shape []int64
	for _, d := range strings.Split(dims, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q: %q is not a positive size", v, d)
		}
		shape = append(shape, n)
	}
	if _, dup := f[name]; dup {
		return fmt.Errorf("%q: input %s's shape is given twice", v, name)
	}
	f[name] = shape
	return nil
}
