package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/registrar"
)

// zooEntry is one line of zoo/manifest.json.
type zooEntry struct {
	Name             string  `json:"name"`
	File             string  `json:"file"`
	Task             string  `json:"task"`
	Dataset          string  `json:"dataset"`
	Validation       string  `json:"validation"`
	InputScale       float64 `json:"input_scale"`
	DeclaredAccuracy float64 `json:"declared_accuracy"`
}

func readZoo(dir string) ([]zooEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("model zoo: %w (run from the repository root or pass --zoo)", err)
	}
	var zoo []zooEntry
	if err := json.Unmarshal(b, &zoo); err != nil {
		return nil, fmt.Errorf("model zoo manifest: %w", err)
	}
	return zoo, nil
}

// registerZoo registers every zoo model that is not registered yet, two at
// a time, and waits for all of them.
func registerZoo(ctx context.Context, c *client.Client, dir string, zoo []zooEntry) error {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(zoo))
	sem := make(chan struct{}, 2)
	for i, z := range zoo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := c.Register(ctx, client.Registration{
				Name: z.Name, Task: z.Task, Dataset: z.Dataset,
				ModelPath:     filepath.Join(dir, z.File),
				ValidationDir: filepath.Join(dir, z.Validation),
				InputScale:    z.InputScale,
			})
			if err == nil && st.State != registrar.StateReady {
				st, err = c.Wait(ctx, z.Name, nil)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", z.Name, err)
				return
			}
			fmt.Printf("  %-20s %s (%s)\n", z.Name, st.Phase, st.Elapsed.Round(time.Millisecond))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Printf("zoo registered in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func runDemo(ctx context.Context, args []string) error {
	cfg := defaultServeConfig()
	cfg.Data = ".infaas-demo"
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	cfg.flags(fs)
	zooDir := fs.String("zoo", "zoo", "model zoo `directory` (with manifest.json)")
	exit := fs.Bool("exit", false, "stop after the demo instead of serving until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	zoo, err := readZoo(*zooDir)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan serverAddrs, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ready) }()
	var base string
	select {
	case a := <-ready:
		base = a.HTTP
	case err := <-done:
		return err
	}
	c := client.New(base)

	fmt.Printf("\n== infaas demo: server at %s, data in %s\n\n", base, cfg.Data)
	fmt.Printf("Registering %d zoo models (variants are generated and profiled on this machine)...\n", len(zoo))
	if err := registerZoo(ctx, c, *zooDir, zoo); err != nil {
		cancel()
		<-done
		return err
	}
	for _, z := range zoo {
		a, err := c.Architecture(ctx, z.Name)
		if err != nil {
			return err
		}
		vs, err := c.Variants(ctx, z.Name)
		if err != nil {
			return err
		}
		fmt.Printf("\n== %s (%s): %.2f%% top-1 %s on %d validation samples; %d variants kept, %d dropped\n",
			a.Name, a.UseCaseID(), a.Accuracy, a.AccuracySource, a.ValidationSamples, len(vs), len(a.Dropped))
		printVariants(os.Stdout, vs)
	}
	if err := demoQueries(ctx, c, *zooDir); err != nil {
		cancel()
		<-done
		return err
	}
	fmt.Printf("\nServing at %s — try: bin/infaas models; bin/infaas variants mnist-cnn-m --dropped. Ctrl-C stops.\n", base)
	if *exit {
		cancel()
	}
	return <-done
}

// demoQueries runs model-less queries with different requirements and
// shows what infaas chose and why.
func demoQueries(ctx context.Context, c *client.Client, zooDir string) error {
	in, err := readInput(filepath.Join(zooDir, "data/mnist/inputs.idx"), []int64{-1, 1, 28, 28}, 0, 1)
	if err != nil {
		return err
	}
	in.Name, in.Datatype = "input", "FP32"
	sets := []struct {
		what   string
		params map[string]any
	}{
		{"tight latency, any accuracy", map[string]any{"latency_ms": 0.5}},
		{"high accuracy, relaxed latency", map[string]any{"latency_ms": 50.0, "min_accuracy": 98.5}},
		{"middle ground", map[string]any{"latency_ms": 2.0, "min_accuracy": 97.0}},
		{"impossible accuracy, strict", map[string]any{"latency_ms": 10.0, "min_accuracy": 99.9, "strict": true}},
	}
	fmt.Printf("\n== Model-less queries on classification/mnist (one MNIST digit each; the first query of a set may load a variant)\n")
	for _, set := range sets {
		fmt.Printf("\n-- %s: %v\n", set.what, set.params)
		var res client.InferResult
		for i := 0; i < 3; i++ { // the first may cold-start; show a warm one
			res, err = c.Infer(ctx, "classification.mnist", in, set.params)
			if err != nil {
				break
			}
			if i == 0 && res.Parameters["action"] != "serve" {
				fmt.Printf("   first query: %v — %v (%.2f ms)\n", res.Parameters["action"], res.Parameters["variant"], num(res.Parameters["latency_ms"]))
			}
		}
		if err != nil {
			fmt.Printf("   refused: %v\n", err)
			continue
		}
		p := res.Parameters
		fmt.Printf("   chose %v (accuracy %.2f%%), %.3f ms in infaas, met: %v\n   why: %v\n",
			p["variant"], num(p["accuracy"]), num(p["latency_ms"]), p["met"], p["decision"])
	}
	return nil
}
