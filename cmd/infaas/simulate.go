package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/loadgen"
	"github.com/infaas/infaas/policies"
	"github.com/infaas/infaas/sim"
)

func runSimulate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	workload := fs.String("workload", "fluctuating", "load `schedule`: "+loadgen.ScheduleHelp)
	policy := fs.String("policy", "infaas", "serving `policy`: "+strings.Join(policies.Names(), ", "))
	compare := fs.Bool("compare", false, "run "+strings.Join(sim.Comparison, ", ")+" on the workload and compare them")
	out := fs.String("out", "", "write the report (Markdown, CSV, PNG plots) into this `directory`")
	catFile := fs.String("catalog", "convnets", "catalogue: a built-in one ("+strings.Join(sim.Builtin, ", ")+", measured on this project's machine) or a `file` written by --save-catalog")
	from := fs.String("from", "", "read the catalogue from a running infaas at this `URL` instead")
	saveCat := fs.String("save-catalog", "", "write the catalogue in use to this `file` and exit")
	hardware := fs.String("hardware", "paper", "`hardware`: paper (the INFaaS paper's CPU, V100 and Inferentia instances; profiles for absent hardware are derived and listed as assumptions) or local (the catalogue's classes)")
	workers := fs.String("workers", "", "comma-separated `classes` of the workers at the start (default: two of the first class)")
	maxWorkers := fs.Int("max-workers", 8, "the cluster autoscaler may grow the cluster to this many workers (≤ the start: no cluster autoscaling)")
	mixFile := fs.String("mix", "", "requirement mix `file` (loadgen's JSON); default: two sets per use case, a tight and a loose target")
	seed := fs.Uint64("seed", 1, "random `seed`: same seed, same result")
	noise := fs.Float64("noise", 1, "spread of service times: 1 = the profiles' p99/p50, 0 = every batch at its p50")
	overhead := fs.Duration("overhead", time.Millisecond, "time a query spends outside the worker (network, controller)")
	interference := fs.String("interference", "", "slow workers down: `W@AT+FOR*FACTOR`, comma-separated (worker index W from 0, e.g. 0@60s+30s*4)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; simulate takes only flags", fs.Args())
	}
	var cat sim.Catalog
	var err error
	switch {
	case *from != "":
		cat, err = fetchCatalog(ctx, client.New(*from))
	case slices.Contains(sim.Builtin, *catFile):
		cat, err = sim.BuiltinCatalog(*catFile)
	default:
		cat, err = sim.LoadCatalog(*catFile)
	}
	if err != nil {
		return err
	}
	if *saveCat != "" {
		return cat.Save(*saveCat)
	}
	s := sim.Setup{Catalog: cat, Hardware: *hardware, MaxWorkers: *maxWorkers, Workload: *workload, Seed: *seed, Noise: *noise, Overhead: *overhead}
	if *workers != "" {
		s.Workers = strings.Split(*workers, ",")
	}
	if *mixFile != "" {
		if s.Mix, err = loadgen.ReadMix(*mixFile); err != nil {
			return fmt.Errorf("mix %s: %w", *mixFile, err)
		}
	}
	if s.Interference, err = parseInterference(*interference); err != nil {
		return err
	}
	names := []string{*policy}
	if *compare {
		names = sim.Comparison
	}
	start := time.Now()
	rs, err := sim.Compare(s, names)
	if err != nil {
		return err
	}
	var sent int64
	for _, r := range rs {
		sent += r.Sent
	}
	target := 0.0
	if len(rs) > 0 {
		cfg, _ := s.Config(names[0])
		target = float64(cfg.Mix.Tightest()) / float64(time.Millisecond)
		for _, a := range rs[0].Assumptions {
			fmt.Println("assumption:", a)
		}
	}
	fmt.Print(sim.FormatTable(rs))
	var notes []string
	for _, t := range sim.Targets(*workload, rs) {
		notes = append(notes, t.Line())
		fmt.Println("target:", t.Line())
	}
	fmt.Printf("\n%d simulated queries in %s of wall time\n", sent, time.Since(start).Round(time.Millisecond))
	if *out == "" {
		return nil
	}
	if *compare {
		if err := sim.WriteComparison(*out, *workload, rs, target, notes); err != nil {
			return err
		}
	}
	for _, r := range rs {
		dir := *out
		if *compare {
			dir = filepath.Join(*out, r.Policy)
		}
		if err := sim.WriteReport(dir, r, target); err != nil {
			return err
		}
	}
	fmt.Println("report written to", *out)
	return nil
}

// fetchCatalog reads every architecture and its variants from a running
// infaas.
func fetchCatalog(ctx context.Context, c *client.Client) (sim.Catalog, error) {
	archs, vs, err := c.Catalog(ctx)
	if err != nil {
		return sim.Catalog{}, err
	}
	if len(vs) == 0 {
		return sim.Catalog{}, fmt.Errorf("the infaas at %s has no registered variants", c.Base())
	}
	host, _ := os.Hostname()
	return sim.Catalog{Source: fmt.Sprintf("registered and profiled by the infaas at %s (read from %s on %s, %s)", c.Base(), host,
		time.Now().UTC().Format("2006-01-02"), catalog.LocalCPU().Name), Architectures: archs, Variants: vs}, nil
}

// parseInterference reads W@AT+FOR*FACTOR,...
func parseInterference(s string) ([]sim.Interference, error) {
	var out []sim.Interference
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		bad := fmt.Errorf("--interference %q: want W@AT+FOR*FACTOR, e.g. 0@60s+30s*4", part)
		w, rest, ok := strings.Cut(strings.TrimSpace(part), "@")
		at, rest2, ok2 := strings.Cut(rest, "+")
		dur, f, ok3 := strings.Cut(rest2, "*")
		if !ok || !ok2 || !ok3 {
			return nil, bad
		}
		var in sim.Interference
		var err error
		if in.Worker, err = strconv.Atoi(w); err != nil {
			return nil, bad
		}
		if in.At, err = time.ParseDuration(at); err != nil {
			return nil, bad
		}
		if in.For, err = time.ParseDuration(dur); err != nil {
			return nil, bad
		}
		if in.Factor, err = strconv.ParseFloat(f, 64); err != nil {
			return nil, bad
		}
		out = append(out, in)
	}
	return out, nil
}
