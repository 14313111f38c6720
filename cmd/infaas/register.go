package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/registrar"
)

func runRegister(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	server := serverFlag(fs)
	var r client.Registration
	var accuracy float64
	fs.StringVar(&r.Name, "name", "", "architecture `name` (letters, digits, - and _)")
	fs.StringVar(&r.Task, "task", "", "`task`, e.g. classification")
	fs.StringVar(&r.Dataset, "dataset", "", "`dataset`, e.g. mnist")
	file := fs.String("file", "", "ONNX model: a local `path`, or a bucket URL (file://, s3://, gs://, azblob://) the server fetches")
	fs.StringVar(&r.ValidationDir, "validation", "", "`directory` with inputs.idx and labels.idx (accuracy is then measured)")
	fs.Float64Var(&accuracy, "accuracy", -1, "declared top-1 accuracy in `percent`, used only without --validation; without either, queries with a min_accuracy skip this model")
	fs.Float64Var(&r.InputScale, "input-scale", 0, "preprocessing: the model's input is the use case's raw input times `factor` (e.g. 0.00392156862745098 for 0–255 pixels into a 0–1 model)")
	config := fs.String("config", "", "JSON `file` of contract overrides: {\"batch\": \"auto\"|\"none\", \"shapes\": {input: [dims, -1 dynamic]}, \"profile_shapes\": {input: [dims without batch]}, \"labels\": [class names]}")
	fs.BoolVar(&r.Reprofile, "reprofile", false, "measure every variant afresh, even where the server's profile cache holds this graph's profile from an earlier registration on the same machine")
	noWait := fs.Bool("no-wait", false, "return once the server has accepted the registration")
	asJSON := fs.Bool("json", false, "print the final status as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if r.Name == "" || r.Task == "" || r.Dataset == "" || *file == "" {
		return errors.New("--name, --task, --dataset and --file are required")
	}
	if strings.Contains(*file, "://") {
		r.ModelURL = *file
	} else {
		r.ModelPath = *file
	}
	if accuracy >= 0 {
		r.Accuracy = &accuracy
	}
	if *config != "" {
		b, err := os.ReadFile(*config)
		if err != nil {
			return err
		}
		var o registrar.Overrides
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return fmt.Errorf("--config %s: %w", *config, err)
		}
		r.Overrides = &o
	}
	c := client.New(*server)
	st, err := c.Register(ctx, r)
	if err != nil {
		return err
	}
	if *noWait || st.State == registrar.StateReady {
		return printStatus(st, *asJSON)
	}
	st, err = waitWithProgress(ctx, c, r.Name, !*asJSON && term.IsTerminal(int(os.Stderr.Fd())))
	if err != nil {
		return fmt.Errorf("registration of %s failed: %w", r.Name, err)
	}
	return printStatus(st, *asJSON)
}

func printStatus(st registrar.Status, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(st)
	}
	switch st.State {
	case registrar.StateReady:
		if st.Variants > 0 {
			fmt.Printf("registered %s: %d variants kept, %d dropped, in %s", st.Name, st.Variants, st.Dropped, st.Elapsed.Round(time.Millisecond))
			if st.Reused > 0 {
				fmt.Printf(" (%d profiles reused from the profile cache; --reprofile measures afresh)", st.Reused)
			}
			fmt.Println()
		} else {
			fmt.Printf("%s: %s\n", st.Name, st.Phase)
		}
	default:
		fmt.Printf("%s: %s (%s)\n", st.Name, st.State, st.Phase)
	}
	return nil
}

// waitWithProgress polls the registration, drawing a progress bar on stderr.
func waitWithProgress(ctx context.Context, c *client.Client, name string, show bool) (registrar.Status, error) {
	var bar *progressbar.ProgressBar
	return c.Wait(ctx, name, func(st registrar.Status) {
		if !show || st.Total == 0 {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions(st.Total,
				progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(name),
				progressbar.OptionShowCount(),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionClearOnFinish(),
				progressbar.OptionSetWidth(30))
		}
		bar.ChangeMax(st.Total)
		bar.Describe(fmt.Sprintf("%s: %s", name, st.Phase))
		_ = bar.Set(st.Done)
		if st.State == registrar.StateReady || st.State == registrar.StateFailed {
			_ = bar.Finish()
		}
	})
}
