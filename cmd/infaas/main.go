// Command infaas is the model-less inference serving system: one binary
// with subcommands for the server and for its users.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/infaas/infaas/profiler"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"serve":      {"run the all-in-one server: a controller and local worker processes", runServe},
	"controller": {"run a controller (front end, dispatcher, registrar, worker registry); workers join it", runController},
	"demo":       {"start a server, register the model zoo, show the variants", runDemo},
	"events":     {"show the autoscaling and mitigation events (--follow to stream)", runEvents},
	"register":   {"register an ONNX model", runRegister},
	"models":     {"list use cases and architectures", runModels},
	"variants":   {"list an architecture's variants and their profiles", runVariants},
	"version":    {"print versions", runVersion},
	"workers":    {"list workers with their replicas, load and health", runWorkers},
	"worker":     {"run a worker: host replicas for a controller (infaas worker --controller ADDR --repository URL)", runWorker},
	"query":      {"send a query: a variant, an architecture, or a task and dataset with requirements", runQuery},
	"loadgen":    {"send an open-loop load: a rate schedule, a mix of requirements; report latency and violations", runLoadgen},
	"simulate":   {"simulate a workload on the live policies (infaas, SM+, Clipper+) on a virtual clock; --compare, --out for plots", runSimulate},
}

func usage() {
	fmt.Fprintf(os.Stderr, "infaas — model-less inference serving\n\nUsage: infaas <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun `infaas <command> -h` for a command's flags.\n")
}

func main() {
	profiler.MaybeRunChild()
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "infaas: unknown command %q\n\n", name)
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "infaas %s: %v\n", name, err)
		os.Exit(1)
	}
}

// serverFlag adds --server, defaulting to $INFAAS_SERVER or Triton's HTTP port.
func serverFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("INFAAS_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8000"
	}
	return fs.String("server", def, "infaas server `URL` (or set INFAAS_SERVER)")
}
