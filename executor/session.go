package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/onnx"
)

// Graph optimisation levels, as ONNX Runtime names them.
const (
	OptDisabled = "disabled"
	OptBasic    = "basic"
	OptExtended = "extended"
	OptAll      = "all"
)

// Execution providers.
const (
	ProviderCPU  = "cpu"
	ProviderCUDA = "cuda"
)

// ErrProviderUnavailable is returned when an execution provider cannot be
// used on this machine (library without it, or no device).
var ErrProviderUnavailable = errors.New("execution provider unavailable")

// ErrBadModel wraps ONNX Runtime's refusal to load a model.
var ErrBadModel = errors.New("ONNX Runtime rejected the model")

// Options configure a session.
type Options struct {
	Threads  int    // intra-op threads; 0 lets ONNX Runtime choose
	OptLevel string // one of the Opt* constants; "" means OptAll
	Provider string // ProviderCPU (default) or ProviderCUDA
	// OptimizedPath, when set, makes ONNX Runtime write the optimised graph there.
	OptimizedPath string
}

func optLevel(s string) (ort.GraphOptimizationLevel, error) {
	switch s {
	case OptDisabled:
		return ort.GraphOptimizationLevelDisableAll, nil
	case OptBasic:
		return ort.GraphOptimizationLevelEnableBasic, nil
	case OptExtended:
		return ort.GraphOptimizationLevelEnableExtended, nil
	case OptAll, "":
		return ort.GraphOptimizationLevelEnableAll, nil
	}
	return 0, fmt.Errorf("unknown graph optimisation level %q (want disabled, basic, extended or all)", s)
}

func newSessionOptions(o Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*ort.SessionOptions, error) {
		so.Destroy()
		return nil, err
	}
	lvl, err := optLevel(o.OptLevel)
	if err != nil {
		return fail(err)
	}
	if err := so.SetGraphOptimizationLevel(lvl); err != nil {
		return fail(err)
	}
	if o.Threads > 0 {
		if err := so.SetIntraOpNumThreads(o.Threads); err != nil {
			return fail(err)
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			return fail(err)
		}
		// Do not spin idle threads: a worker hosts many replicas on few cores.
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return fail(err)
		}
	}
	if o.OptimizedPath != "" {
		if err := so.SetOptimizedModelFilePath(o.OptimizedPath); err != nil {
			return fail(err)
		}
	}
	switch o.Provider {
	case "", ProviderCPU:
	case ProviderCUDA:
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return fail(fmt.Errorf("%w: cuda: %v", ErrProviderUnavailable, err))
		}
		defer cuda.Destroy()
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return fail(fmt.Errorf("%w: cuda: %v", ErrProviderUnavailable, err))
		}
	default:
		return fail(fmt.Errorf("unknown execution provider %q (want cpu or cuda)", o.Provider))
	}
	return so, nil
}

// ProviderAvailable reports whether a session can use provider on this
// machine, with the reason when it cannot.
func ProviderAvailable(provider string) error {
	if err := Init(); err != nil {
		return err
	}
	so, err := newSessionOptions(Options{Provider: provider})
	if err != nil {
		return err
	}
	so.Destroy()
	return nil
}

// IO is a model's tensor contract as the model itself states it (the
// batch dimension detected by catalog.DetectBatch).
type IO = catalog.Contract

// Inspect reads model's inputs and outputs as ONNX Runtime sees them, with
// the symbols of their dynamic dimensions from the graph. It fails with
// ErrBadModel when ONNX Runtime cannot read the model and with
// ErrUnsupported when a tensor is of a kind infaas does not serve.
func Inspect(model []byte) (IO, error) {
	if err := Init(); err != nil {
		return IO{}, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return IO{}, fmt.Errorf("%w: %v", ErrBadModel, cleanORTError(err))
	}
	names := dimNames(model)
	var io IO
	for _, info := range ins {
		t, err := spec("input", info, names)
		if err != nil {
			return IO{}, err
		}
		io.Inputs = append(io.Inputs, t)
	}
	for _, info := range outs {
		t, err := spec("output", info, names)
		if err != nil {
			return IO{}, err
		}
		io.Outputs = append(io.Outputs, t)
	}
	if len(io.Inputs) == 0 || len(io.Outputs) == 0 {
		return IO{}, fmt.Errorf("%w: the model has %d inputs and %d outputs; it needs at least one of each", ErrUnsupported, len(io.Inputs), len(io.Outputs))
	}
	io.Batched = catalog.DetectBatch(io.Inputs, io.Outputs)
	for i, t := range io.Outputs {
		// The ONNX Runtime binding copies outputs it allocates one byte
		// per element for 16-bit floats; infaas allocates them itself,
		// which needs their shape before the run.
		if (t.DataType == "FP16" || t.DataType == "BF16") && catalog.Elements(io.Sample(t)) < 0 {
			return IO{}, fmt.Errorf("%w: output %d %q is %s with dynamic dimensions %v; infaas serves 16-bit float outputs only when their shape is fixed apart from the batch",
				ErrUnsupported, i, t.Name, t.DataType, t.Shape)
		}
	}
	return io, nil
}

// ErrUnsupported is returned for a model ONNX Runtime reads but infaas
// cannot serve; the message names the tensor and the rule.
var ErrUnsupported = errors.New("infaas cannot serve this model")

func spec(kind string, info ort.InputOutputInfo, names map[string][]string) (catalog.TensorSpec, error) {
	if info.OrtValueType != ort.ONNXTypeTensor {
		return catalog.TensorSpec{}, fmt.Errorf("%w: %s %q is a %s; infaas serves tensors only (no sequences or maps)",
			ErrUnsupported, kind, info.Name, info.OrtValueType)
	}
	dt := fromORT(info.DataType)
	if ElementSize(dt) == 0 {
		return catalog.TensorSpec{}, fmt.Errorf("%w: %s %q holds %s elements; infaas serves BOOL, UINT8–64, INT8–64, FP16, BF16, FP32 and FP64 tensors",
			ErrUnsupported, kind, info.Name, info.DataType)
	}
	shape := make([]int64, len(info.Dimensions))
	for i, d := range info.Dimensions {
		if d <= 0 {
			d = -1
		}
		shape[i] = d
	}
	t := catalog.TensorSpec{Name: info.Name, DataType: dt, Shape: shape}
	if n := names[info.Name]; len(n) == len(shape) && slices.ContainsFunc(n, func(s string) bool { return s != "" }) {
		t.DimNames = n
	}
	return t, nil
}

// dimNames reads the dim_param symbols of the graph's inputs and outputs,
// keyed by tensor name; nil when the graph does not parse (ONNX Runtime
// reads it anyway and the names are only a nicety).
func dimNames(model []byte) map[string][]string {
	m, err := onnx.Parse(model)
	if err != nil {
		return nil
	}
	out := map[string][]string{}
	g := m.GetGraph()
	for _, v := range append(slices.Clip(g.GetInput()), g.GetOutput()...) {
		dims := v.GetType().GetTensorType().GetShape().GetDim()
		n := make([]string, len(dims))
		for i, d := range dims {
			n[i] = d.GetDimParam()
		}
		out[v.GetName()] = n
	}
	return out
}

// cleanORTError drops the binding's wrapper prefixes, keeping ORT's message.
func cleanORTError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "Error creating C session: "); i >= 0 {
		s = s[i+len("Error creating C session: "):]
	}
	return s
}

// Optimize returns model with ONNX Runtime's graph optimisations at level
// applied, as ONNX Runtime itself writes the optimised graph.
func Optimize(model []byte, level string) ([]byte, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "infaas-opt-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "optimized.onnx")
	io, err := Inspect(model)
	if err != nil {
		return nil, err
	}
	so, err := newSessionOptions(Options{OptLevel: level, OptimizedPath: out, Threads: 1})
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, tensorNames(io.Inputs), tensorNames(io.Outputs), so)
	if err != nil {
		return nil, fmt.Errorf("optimise at level %s: %w: %v", level, ErrBadModel, cleanORTError(err))
	}
	s.Destroy()
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("optimise at level %s: read optimised graph: %w", level, err)
	}
	return b, nil
}

func tensorNames(ts []catalog.TensorSpec) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// Session is one loaded model. Run is safe for concurrent use.
type Session struct {
	s     *ort.DynamicAdvancedSession
	io    IO
	inDT  []ort.TensorElementDataType
	outDT []ort.TensorElementDataType
	opts  Options
}

// Load creates a session for model.
func Load(model []byte, o Options) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	io, err := Inspect(model)
	if err != nil {
		return nil, err
	}
	so, err := newSessionOptions(o)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, tensorNames(io.Inputs), tensorNames(io.Outputs), so)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, cleanORTError(err))
	}
	sess := &Session{s: s, io: io, opts: o}
	for _, t := range io.Inputs {
		dt, _ := toORT(t.DataType)
		sess.inDT = append(sess.inDT, dt)
	}
	for _, t := range io.Outputs {
		dt, _ := toORT(t.DataType)
		sess.outDT = append(sess.outDT, dt)
	}
	return sess, nil
}

// IO is the session's tensor contract as the model states it.
func (s *Session) IO() IO { return s.io }

// Close releases the session.
func (s *Session) Close() error { return s.s.Destroy() }

// Run runs the model once. inputs holds one tensor per model input, in the
// model's order, each with its whole shape (batch dimension included) and
// its data as raw little-endian bytes of the input's datatype; names and
// datatypes in inputs are ignored. The outputs come back in the model's
// order. outs, when it holds one tensor per output, lends its Data
// buffers to the answer (they are reused when large enough).
func (s *Session) Run(inputs []inference.Tensor, outs []inference.Tensor) ([]inference.Tensor, error) {
	if len(inputs) != len(s.io.Inputs) {
		return nil, fmt.Errorf("the model takes %d inputs, got %d", len(s.io.Inputs), len(inputs))
	}
	in := make([]ort.Value, len(inputs))
	defer destroyAll(in)
	for i, t := range inputs {
		if n := catalog.Elements(t.Shape); n < 0 || int(n)*ElementSize(s.io.Inputs[i].DataType) != len(t.Data) {
			return nil, fmt.Errorf("input %q: shape %v does not match its %d bytes of %s", s.io.Inputs[i].Name, t.Shape, len(t.Data), s.io.Inputs[i].DataType)
		}
		shape := ort.Shape(t.Shape)
		if len(shape) == 0 {
			// The binding refuses a shape without dimensions; ONNX Runtime
			// takes a one-element tensor for a scalar input (the request
			// was checked against the rank-0 contract before).
			shape = ort.Shape{1}
		}
		data := t.Data
		if len(data) == 0 { // the binding refuses an empty buffer even for an empty tensor
			data = make([]byte, 1)
		}
		v, err := ort.NewCustomDataTensor(shape, data, s.inDT[i])
		if err != nil {
			return nil, fmt.Errorf("input %q %v: %w", s.io.Inputs[i].Name, t.Shape, err)
		}
		in[i] = v
	}
	if len(outs) != len(s.io.Outputs) {
		outs = make([]inference.Tensor, len(s.io.Outputs))
	}
	out := make([]ort.Value, len(s.io.Outputs))
	defer destroyAll(out)
	lent := make([]bool, len(out))
	for i, spec := range s.io.Outputs {
		outs[i].Name, outs[i].Datatype = spec.Name, spec.DataType
		shape := s.outputShape(spec, inputs)
		if shape == nil {
			continue // ORT allocates it: its shape depends on the data
		}
		n := int(catalog.Elements(shape)) * ElementSize(spec.DataType)
		if n == 0 {
			continue
		}
		buf := outs[i].Data
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		v, err := ort.NewCustomDataTensor(ort.Shape(shape), buf, s.outDT[i])
		if err != nil {
			return nil, fmt.Errorf("output %q %v: %w", spec.Name, shape, err)
		}
		out[i], lent[i] = v, true
		outs[i].Shape, outs[i].Data = shape, buf
	}
	if err := s.s.Run(in, out); err != nil {
		return nil, fmt.Errorf("run: %v", cleanORTError(err))
	}
	for i, v := range out {
		if lent[i] {
			continue
		}
		data, shape, err := valueBytes(v, outs[i].Data[:0])
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", s.io.Outputs[i].Name, err)
		}
		outs[i].Data, outs[i].Shape = data, shape
	}
	return outs, nil
}

// outputShape is the shape output spec will have for inputs when it can be
// known before the run: every dimension fixed, or only the batch dimension
// dynamic in a batched model. Otherwise nil, and ONNX Runtime allocates.
func (s *Session) outputShape(spec catalog.TensorSpec, inputs []inference.Tensor) []int64 {
	shape := slices.Clone(spec.Shape)
	for i, d := range shape {
		switch {
		case d >= 0:
		case i == 0 && s.io.Batched && len(inputs[0].Shape) > 0:
			shape[0] = inputs[0].Shape[0]
		default:
			return nil
		}
	}
	if len(shape) == 0 {
		return nil // a scalar: the binding cannot lend a rank-0 buffer
	}
	return shape
}

func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			v.Destroy()
		}
	}
}
