package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	_ "image/jpeg" // JPEG inputs
	_ "image/png"  // PNG inputs
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/validation"
)

func runQuery(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	server := serverFlag(fs)
	variant := fs.String("variant", "", "query this `variant` (no choice is made)")
	model := fs.String("model", "", "query this `architecture`; infaas picks the variant")
	task := fs.String("task", "", "model-less: the `task` (with --dataset)")
	dataset := fs.String("dataset", "", "model-less: the `dataset` (with --task)")
	latency := fs.Duration("latency", 0, "latency target, e.g. 20ms")
	accuracy := fs.Float64("accuracy", 0, "minimum top-1 accuracy in `percent`")
	cost := fs.Float64("max-cost", 0, "cost ceiling in `USD` per 1,000 queries")
	strict := fs.Bool("strict", false, "refuse rather than serve best effort")
	explain := fs.Bool("explain", false, "show why the variant was chosen")
	asJSON := fs.Bool("json", false, "print the whole response as JSON")
	inputs := &inputFlag{}
	fs.Var(inputs, "input", "input `[NAME=]FILE`: raw tensor (.bin, little-endian FP32), JSON tensor (.json: {\"shape\", \"data\"}), image (.png, .jpg) or IDX (.idx); "+
		"repeat as NAME=FILE for a model with several inputs")
	index := fs.Int("index", 0, "IDX input: first sample to send")
	count := fs.Int("count", 1, "IDX input: samples to send as one batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	name, err := queryTarget(*variant, *model, *task, *dataset)
	if err != nil {
		return err
	}
	if len(inputs.files) == 0 {
		return errors.New("--input is required")
	}
	c := client.New(*server)
	info, err := c.Model(ctx, name)
	if err != nil {
		return err
	}
	ins, err := inputs.read(name, info.Inputs, *index, *count)
	if err != nil {
		return err
	}
	params := client.Requirements{
		Latency: *latency, MinAccuracy: *accuracy, MaxCost: *cost, Strict: *strict, Explain: *explain,
	}.Params()
	start := time.Now()
	res, err := c.InferAll(ctx, name, ins, params)
	if err != nil {
		return err
	}
	rtt := time.Since(start)
	if *asJSON {
		return printJSON(res)
	}
	printResult(res, rtt)
	return nil
}

func queryTarget(variant, model, task, dataset string) (string, error) {
	n := 0
	for _, s := range []string{variant, model, task + dataset} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return "", errors.New("give exactly one of --variant, --model, or --task with --dataset")
	}
	switch {
	case variant != "":
		return variant, nil
	case model != "":
		return model, nil
	case task == "" || dataset == "":
		return "", errors.New("a model-less query needs both --task and --dataset")
	}
	return task + "." + dataset, nil
}

// inputFlag is --input, repeated: FILE alone for a model with one input,
// NAME=FILE for each input of a model with several.
type inputFlag struct {
	files []string // in order given
	named map[string]string
}

func (f *inputFlag) String() string { return strings.Join(f.files, ",") }

func (f *inputFlag) Set(v string) error {
	if name, path, ok := strings.Cut(v, "="); ok && name != "" && !strings.ContainsAny(name, `/\`) {
		if f.named == nil {
			f.named = map[string]string{}
		}
		if _, dup := f.named[name]; dup {
			return fmt.Errorf("input %s is given twice", name)
		}
		f.named[name] = path
	}
	f.files = append(f.files, v)
	return nil
}

// read reads one tensor per input of the model, in the model's order.
func (f *inputFlag) read(model string, specs []client.TensorMetadata, index, count int) ([]client.InferInput, error) {
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Name
	}
	paths := map[string]string{}
	switch {
	case len(f.files) == 1 && len(specs) == 1 && f.named[specs[0].Name] == "":
		paths[specs[0].Name] = f.files[0] // FILE alone (or a path with "=" in it)
	case len(f.named) != len(f.files):
		return nil, fmt.Errorf("%s has inputs %s: give each as --input NAME=FILE", model, strings.Join(names, ", "))
	default:
		for name, path := range f.named {
			if !slices.Contains(names, name) {
				return nil, fmt.Errorf("%s has no input %q; its inputs are %s", model, name, strings.Join(names, ", "))
			}
			paths[name] = path
		}
	}
	ins := make([]client.InferInput, len(specs))
	for i, sp := range specs {
		path, ok := paths[sp.Name]
		if !ok {
			return nil, fmt.Errorf("%s needs input %q too (its inputs are %s): add --input %s=FILE", model, sp.Name, strings.Join(names, ", "), sp.Name)
		}
		in, err := readInput(path, sp.Shape, index, count)
		if err != nil {
			return nil, fmt.Errorf("input %s (%s): %w", sp.Name, path, err)
		}
		in.Name, in.Datatype = sp.Name, sp.Datatype
		ins[i] = in
	}
	return ins, nil
}

// readInput turns a file into a tensor of the model's input shape (values
// as float32). A JSON tensor's own shape fills the dimensions the model
// leaves dynamic; the other formats need a shape without them.
func readInput(path string, shape []int64, index, count int) (client.InferInput, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return client.InferInput{}, err
	}
	if strings.ToLower(filepath.Ext(path)) == ".json" {
		var t struct {
			Shape []int64   `json:"shape"`
			Data  []float32 `json:"data"`
		}
		if err := json.Unmarshal(data, &t); err != nil {
			return client.InferInput{}, fmt.Errorf("want a JSON tensor {\"shape\": [...], \"data\": [...]}: %w", err)
		}
		if t.Shape == nil {
			return reshape(t.Data, shape)
		}
		in, err := jsonTensor(t.Shape, t.Data, shape)
		if _, fixed := sampleSize(shape); err != nil && fixed == nil {
			// A model without dynamic dimensions takes the values as
			// whole samples of its shape, whatever shape the file says
			// (a flattened image, say).
			return reshape(t.Data, shape)
		}
		return in, err
	}
	elems, err := sampleSize(shape)
	if err != nil {
		return client.InferInput{}, err
	}
	sample := shape[1:]
	var vals []float32
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png", ".jpg", ".jpeg":
		vals, err = imageInput(data, sample)
		if err != nil {
			return client.InferInput{}, err
		}
	case ".idx":
		a, err := validation.ParseIDX(data)
		if err != nil {
			return client.InferInput{}, err
		}
		per := len(a.Values) / a.Dims[0]
		if per != elems {
			return client.InferInput{}, fmt.Errorf("IDX samples have %d values; the model takes %d", per, elems)
		}
		if index < 0 || count < 1 || index+count > a.Dims[0] {
			return client.InferInput{}, fmt.Errorf("--index %d --count %d is outside the file's %d samples", index, count, a.Dims[0])
		}
		for _, v := range a.Values[index*per : (index+count)*per] {
			vals = append(vals, float32(v))
		}
	default: // raw little-endian FP32
		if len(data)%4 != 0 {
			return client.InferInput{}, fmt.Errorf("a raw tensor holds little-endian FP32 values; %d bytes is not a multiple of 4", len(data))
		}
		for i := 0; i < len(data); i += 4 {
			vals = append(vals, math.Float32frombits(binary.LittleEndian.Uint32(data[i:])))
		}
	}
	return reshape(vals, shape)
}

// sampleSize is the number of values in one sample of the model's input
// shape (batch first); an error when the shape does not fix it.
func sampleSize(shape []int64) (int, error) {
	if len(shape) == 0 {
		return 0, errors.New(`the model's input is a scalar: give a JSON tensor {"shape": [], "data": [x]}`)
	}
	elems := 1
	for _, d := range shape[1:] {
		if d <= 0 {
			return 0, fmt.Errorf(`the model's input shape %v has dynamic dimensions: give a JSON tensor with its "shape"`, shape)
		}
		elems *= int(d)
	}
	return elems, nil
}

// reshape makes vals whole samples of the model's shape (batch first, the
// rest fixed).
func reshape(vals []float32, shape []int64) (client.InferInput, error) {
	elems, err := sampleSize(shape)
	if err != nil {
		return client.InferInput{}, err
	}
	sample := shape[1:]
	if len(vals) == 0 || len(vals)%elems != 0 {
		return client.InferInput{}, fmt.Errorf("%d values do not make whole samples of %v (%d values each)", len(vals), sample, elems)
	}
	return client.InferInput{Shape: append([]int64{int64(len(vals) / elems)}, sample...), Data: vals}, nil
}

// jsonTensor checks a JSON tensor's own shape against the model's: the
// same rank, every fixed dimension equal, as many values as it says.
func jsonTensor(own []int64, vals []float32, model []int64) (client.InferInput, error) {
	if len(own) != len(model) {
		return client.InferInput{}, fmt.Errorf("the tensor's shape %v has %d dimensions; the model's %v has %d", own, len(own), model, len(model))
	}
	n := 1
	for k, d := range own {
		if d <= 0 || model[k] > 0 && d != model[k] {
			return client.InferInput{}, fmt.Errorf("the tensor's shape %v does not fit the model's %v (dimension %d)", own, model, k)
		}
		n *= int(d)
	}
	if len(vals) != n {
		return client.InferInput{}, fmt.Errorf("the tensor's shape %v holds %d values; its data has %d", own, n, len(vals))
	}
	return client.InferInput{Shape: own, Data: vals}, nil
}

// imageInput converts an image to grey 0–255 values of the sample's last
// two dimensions (nearest-neighbour resize).
func imageInput(data []byte, sample []int64) ([]float32, error) {
	img, _, err := image.Decode(strings.NewReader(string(data)))
	if err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	if len(sample) < 2 {
		return nil, fmt.Errorf("the model's sample shape %v is not an image", sample)
	}
	h, w := int(sample[len(sample)-2]), int(sample[len(sample)-1])
	channels := 1
	for _, d := range sample[:len(sample)-2] {
		channels *= int(d)
	}
	if channels != 1 {
		return nil, fmt.Errorf("the model takes %d channels; image input supports grey models", channels)
	}
	b := img.Bounds()
	out := make([]float32, 0, h*w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			px := img.At(b.Min.X+x*b.Dx()/w, b.Min.Y+y*b.Dy()/h)
			r, g, bl, _ := px.RGBA()
			out = append(out, float32((0.299*float64(r)+0.587*float64(g)+0.114*float64(bl))/257))
		}
	}
	return out, nil
}

func printResult(res client.InferResult, rtt time.Duration) {
	p := res.Parameters
	fmt.Printf("served by %v (%v) on %v — %v, batch %v\n", p["variant"], p["architecture"], p["worker"], p["action"], p["batch_size"])
	fmt.Printf("latency %.3f ms in infaas (queue %v ms, compute %v ms), %.3f ms round trip; requirements met: %v\n",
		num(p["latency_ms"]), p["queue_ms"], p["compute_ms"], float64(rtt.Microseconds())/1000, p["met"])
	fmt.Printf("why: %v\n", p["decision"])
	if l, ok := p["loading"]; ok {
		fmt.Printf("loading in the background: %v\n", l)
	}
	for _, o := range res.Outputs {
		if len(o.Shape) == 2 && o.Shape[1] > 1 {
			classes := int(o.Shape[1])
			for i := 0; i < int(o.Shape[0]); i++ {
				row := o.Data[i*classes : (i+1)*classes]
				idx := make([]int, classes)
				for k := range idx {
					idx[k] = k
				}
				sort.Slice(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
				fmt.Printf("sample %d: class %d (score %.3f; next %d %.3f)\n", i, idx[0], row[idx[0]], idx[1], row[idx[1]])
			}
		} else {
			fmt.Printf("%s %v: %v\n", o.Name, o.Shape, o.Data)
		}
	}
	if e, ok := p["explanation"]; ok {
		fmt.Printf("\n%v\n", e)
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}
