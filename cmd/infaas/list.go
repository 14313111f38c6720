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

	"github.com/infaas/infaas/api"
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
	cl := client.New(*server)
	l, err := cl.Models(ctx)
	if err != nil {
		return err
	}
	ws, err := cl.Workers(ctx)
	if err != nil {
		return err
	}
	// Where each architecture's variants are loaded now.
	loaded := map[string][]string{}
	for _, w := range ws {
		for _, r := range w.Replicas {
			loaded[r.Architecture] = append(loaded[r.Architecture], fmt.Sprintf("%s@%s(%s)", strings.TrimPrefix(r.Variant, r.Architecture+"."), w.ID, r.State))
		}
	}
	if *asJSON {
		return printJSON(struct {
			api.Listing
			Loaded map[string][]string `json:"loaded"`
		}{l, loaded})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USE CASE\tINPUTS\tOUTPUTS\tCLASSES")
	for _, u := range l.UseCases {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", u.ID(), describeAll(u.Contract, u.Inputs), describeAll(u.Contract, u.Outputs), u.Classes)
	}
	tw.Flush()
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ARCHITECTURE\tUSE CASE\tACCURACY\tINPUT SCALE\tBATCH\tSIZE\tVARIANTS DROPPED\tLOADED (variant@worker)")
	for _, a := range l.Architectures {
		batch := "dynamic"
		switch {
		case !a.Batched:
			batch = "none"
		case a.FixedBatch() > 0:
			batch = fmt.Sprintf("fixed %d", a.FixedBatch())
		}
		where := "-"
		if l := loaded[a.Name]; len(l) > 0 {
			slices.Sort(l)
			where = strings.Join(l, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f%% (%s)\t%g\t%s\t%s\t%d\t%s\n", a.Name, a.UseCaseID(), a.Accuracy, a.AccuracySource,
			a.InputScale, batch, bytesHuman(a.ModelBytes), len(a.Dropped), where)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range l.Architectures {
		for _, m := range a.UseCaseMapping {
			fmt.Printf("%s: %s\n", a.Name, m)
		}
	}
	return nil
}

func runVariants(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("variants", flag.ContinueOnError)
	server := serverFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON: one object per variant; its profiles hold every class's profile, the reference class's included")
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
		return printJSON(withReferenceProfiles(vs))
	}
	printVariants(os.Stdout, vs)
	for _, v := range vs {
		if v.KeptBecause != "" {
			fmt.Printf("%s: %s\n", v.Name, v.KeptBecause)
		}
	}
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

// printVariants writes a table: one row per variant, and one column set
// per hardware class any of them is profiled on — p99 at batch 1 and at
// the variant's max batch, throughput, peak memory and load time measured
// on that class — under a header row naming the class. "-" marks a class a
// variant has no profile for; "*" its reference class, where registration
// measured it and dominance pruning compared it.
func printVariants(w io.Writer, vs []catalog.Variant) {
	classes, refs := variantClasses(vs)
	// One reference class for all: mark it in the header, else per row.
	oneRef := len(refs) == 1
	const set = "\tP99 b=1\tP99 b=max\tTHROUGHPUT\tPEAK MEM\tLOAD"
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var h1, h2 strings.Builder
	h1.WriteString("\t\t\t\t\t\t")
	h2.WriteString("VARIANT\tPREC\tOPT\tTHR\tMAXB\tACCURACY\tFIDELITY")
	for _, c := range classes {
		if oneRef && c == refs[0] {
			c += "*"
		}
		h1.WriteString("\t" + c + "\t\t\t\t")
		h2.WriteString(set)
	}
	fmt.Fprintln(tw, strings.TrimRight(h1.String(), "\t"))
	fmt.Fprintln(tw, h2.String())
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.2f%%%s\t%s", v.Name, v.Precision, v.OptLevel, v.Threads, v.MaxBatch,
			v.Accuracy, declaredMark(v.AccuracySource), fidelity(v.Fidelity))
		for _, c := range classes {
			p, ok := v.ProfileOn(c)
			if !ok {
				fmt.Fprint(tw, "\t-\t-\t-\t-\t-")
				continue
			}
			mark := ""
			if !oneRef && c == v.Hardware {
				mark = "*"
			}
			fmt.Fprintf(tw, "\t%s%s\t%s\t%.0f/s\t%s\t%.1f ms", p99ms(p, 1), mark, p99ms(p, v.MaxBatch),
				p.ThroughputQPS, bytesHuman(p.PeakMemoryBytes), p.LoadMs)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(vs) > 0 {
		fmt.Fprintln(w, "* reference class: profiled at registration, used for dominance pruning")
	}
}

// p99ms is the p99 measured at batch b, or "-" where b was not profiled
// (a fixed-batch model has no batch 1).
func p99ms(p catalog.Profile, b int) string {
	l, ok := p.LatencyMs[b]
	if !ok {
		return "-"
	}
	return ms(l.P99) + " ms"
}

// variantClasses lists the hardware classes vs are profiled on: their
// reference classes in order of appearance, then the others by name; refs
// are the reference classes alone.
func variantClasses(vs []catalog.Variant) (classes, refs []string) {
	var others []string
	for _, v := range vs {
		if !slices.Contains(refs, v.Hardware) {
			refs = append(refs, v.Hardware)
		}
		for _, c := range v.ProfiledClasses()[1:] {
			if !slices.Contains(others, c) {
				others = append(others, c)
			}
		}
	}
	others = slices.DeleteFunc(others, func(c string) bool { return slices.Contains(refs, c) })
	slices.Sort(others)
	return append(slices.Clone(refs), others...), refs
}

// withReferenceProfiles returns vs with each variant's reference profile
// also listed in Profiles under its class, so that a JSON reader finds
// every class's profile in one map (catalog.Variant.ProfileOn reads the
// same either way).
func withReferenceProfiles(vs []catalog.Variant) []catalog.Variant {
	out := slices.Clone(vs)
	for i := range out {
		v := &out[i]
		ps := make(map[string]catalog.Profile, len(v.Profiles)+1)
		for c, p := range v.Profiles {
			ps[c] = p
		}
		ps[v.Hardware] = v.Profile
		v.Profiles = ps
	}
	return out
}

func declaredMark(src string) string {
	switch src {
	case catalog.AccuracyDeclared:
		return " (declared)"
	case catalog.AccuracyUnknown:
		return " (unknown)"
	}
	return ""
}

// fidelity shows how a variant follows the fp32 graph: top-1 agreement
// for a classifier, else the lowest cosine and the largest relative error;
// the loss in accuracy points last.
func fidelity(f *catalog.Fidelity) string {
	if f == nil {
		return "-"
	}
	if f.Top1 >= 0 {
		return fmt.Sprintf("top-1 %.1f%% (−%.2f)", 100*f.Top1, f.Loss())
	}
	return fmt.Sprintf("cos %.5f, max rel %.2g (−%.2f)", f.Cosine, f.MaxRelError, f.Loss())
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
		seen := "in process"
		if w.Remote {
			seen = fmt.Sprintf("at %s, last report %s ago", w.Address, time.Since(w.LastReport).Round(time.Millisecond))
		}
		fmt.Printf("worker %s — %s (%s, %d cores, $%.3f/h), %s: %s of %s reserved\n", w.ID, w.Health, w.Hardware.Name, w.Hardware.Cores,
			w.Hardware.PricePerHour, seen, bytesHuman(w.MemoryReserved), bytesHuman(w.MemoryCapacity))
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

// describeAll writes a contract's tensors as "name FP32 [batch, 3, height, width]; ...".
func describeAll(c catalog.Contract, ts []catalog.TensorSpec) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = c.Describe(t)
	}
	return strings.Join(parts, "; ")
}
