package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
)

func runModels(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("models", flag.ContinueOnError)
	server := serverFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := client.New(*server).Models(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(l)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USE CASE\tINPUT\tCLASSES")
	for _, u := range l.UseCases {
		fmt.Fprintf(tw, "%s\t%s %v\t%d\n", u.ID(), u.Input.DataType, u.Input.SampleShape(), u.Classes)
	}
	tw.Flush()
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ARCHITECTURE\tUSE CASE\tACCURACY\tINPUT SCALE\tBATCH\tSIZE\tVARIANTS DROPPED")
	for _, a := range l.Architectures {
		batch := "dynamic"
		if !a.DynamicBatch && len(a.Input.Shape) > 0 {
			batch = fmt.Sprintf("fixed %d", a.Input.Shape[0])
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f%% (%s)\t%g\t%s\t%s\t%d\n", a.Name, a.UseCaseID(), a.Accuracy, a.AccuracySource,
			a.InputScale, batch, bytesHuman(a.ModelBytes), len(a.Dropped))
	}
	return tw.Flush()
}

func runVariants(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("variants", flag.ContinueOnError)
	server := serverFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON: one object per variant")
	dropped := fs.Bool("dropped", false, "also list the variants that were dropped, and why")
	if err := fs.Parse(reorder(args, "json", "dropped")); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: infaas variants ARCHITECTURE [--json] [--dropped]")
	}
	c := client.New(*server)
	vs, err := c.Variants(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(vs)
	}
	printVariants(os.Stdout, vs)
	if *dropped {
		a, err := c.Architecture(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Printf("\nDropped (%d):\n", len(a.Dropped))
		for _, d := range a.Dropped {
			fmt.Printf("  %s: %s\n", d.Name, d.Reason)
		}
	}
	return nil
}

// printVariants writes a table: one row per variant, latency p50/p99 at
// batch 1 and at its max batch.
func printVariants(w io.Writer, vs []catalog.Variant) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tPREC\tOPT\tTHR\tMAXB\tACCURACY\tLOAD\tP50/P99 b=1\tP50/P99 b=max\tTHROUGHPUT\tPEAK MEM")
	for _, v := range vs {
		p := v.Profile
		l1, lm := p.LatencyMs[1], p.LatencyMs[v.MaxBatch]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.2f%%%s\t%.1f ms\t%s/%s ms\t%s/%s ms\t%.0f/s\t%s\n",
			v.Name, v.Precision, v.OptLevel, v.Threads, v.MaxBatch, v.Accuracy, declaredMark(v.AccuracySource), p.LoadMs,
			ms(l1.P50), ms(l1.P99), ms(lm.P50), ms(lm.P99), p.ThroughputQPS, bytesHuman(p.PeakMemoryBytes))
	}
	tw.Flush()
}

func declaredMark(src string) string {
	if src == catalog.AccuracyDeclared {
		return " (declared)"
	}
	return ""
}

func ms(v float64) string {
	switch {
	case v < 0.1:
		return fmt.Sprintf("%.3f", v)
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func bytesHuman(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reorder moves flags before positional arguments so `variants NAME --json`
// works like `variants --json NAME`. bools name the flags that take no value.
func reorder(args []string, bools ...string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") || slices.Contains(bools, name) || i+1 == len(args) {
			continue
		}
		i++
		flags = append(flags, args[i])
	}
	return append(flags, pos...)
}

func runWorkers(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	server := serverFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ws, err := client.New(*server).Workers(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(ws)
	}
	for _, w := range ws {
		fmt.Printf("worker %s (%s, %d cores, $%.3f/h): %s of %s reserved, running %v\n", w.ID, w.Hardware.Name, w.Hardware.Cores,
			w.Hardware.PricePerHour, bytesHuman(w.MemoryReserved), bytesHuman(w.MemoryCapacity), w.Running)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  REPLICA\tSTATE\tMAXB\tQPS\tP50/P99 ms\tAVG BATCH\tQUEUED\tREFUSED\tHEALTH")
		for _, r := range w.Replicas {
			health := "ok"
			if !r.Health.Healthy() {
				health = strings.Join(r.Health.Reasons, "; ")
			}
			s := r.Stats
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%.0f\t%s/%s\t%.1f\t%d\t%d\t%s\n", r.ID, r.State, r.MaxBatch, s.QPS,
				ms(durMs(s.LatencyP50)), ms(durMs(s.LatencyP99)), s.AvgBatch, s.Queued, s.Refused, health)
		}
		tw.Flush()
	}
	return nil
}

func durMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
