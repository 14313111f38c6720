package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/events"
)

func runEvents(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	server := serverFlag(fs)
	follow := fs.Bool("follow", false, "keep streaming new events until interrupted")
	since := fs.Uint64("since", 0, "show only events after this `seq`")
	var f client.EventFilter
	fs.StringVar(&f.Source, "source", "", "only this `source`: model-autoscaler, cluster-autoscaler, monitor, controller")
	fs.StringVar(&f.Action, "action", "", "only this `action`, e.g. replicate, switch, unload, add-worker, interfered")
	fs.StringVar(&f.Variant, "variant", "", "only events about this `variant`")
	asJSON := fs.Bool("json", false, "print NDJSON: one event a line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (usage: infaas events [--follow] [--since N] [--source S] [--action A] [--variant V] [--json])", fs.Arg(0))
	}
	c := client.New(*server)
	show := func(e events.Event) error { return printEvent(os.Stdout, e, *asJSON) }
	if *follow {
		err := c.Follow(ctx, *since, f, show)
		if errors.Is(err, context.Canceled) {
			return nil // interrupted
		}
		return err
	}
	// Page until the answer's next since stops growing.
	for s := *since; ; {
		es, next, err := c.Events(ctx, s, f)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := show(e); err != nil {
				return err
			}
		}
		if next <= s {
			return nil
		}
		s = next
	}
}

// printEvent writes e as one line: JSON, or e.String() in local time with
// its numbers appended, sorted by name: "… [capacity_qps=95 demand_qps=120]".
func printEvent(w io.Writer, e events.Event, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(e)
	}
	e.Time = e.Time.Local()
	line := e.String()
	if len(e.Numbers) > 0 {
		names := make([]string, 0, len(e.Numbers))
		for k := range e.Numbers {
			names = append(names, k)
		}
		slices.Sort(names)
		nums := make([]string, len(names))
		for i, k := range names {
			nums[i] = k + "=" + compact(e.Numbers[k])
		}
		line += " [" + strings.Join(nums, " ") + "]"
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// compact writes v with at most three decimals and no trailing zeros.
func compact(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) || math.Abs(v) >= 1e15 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}
