package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infaas/infaas/catalog"
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

// IO describes a model's single input and single output.
type IO struct {
	Input  catalog.TensorSpec
	Output catalog.TensorSpec
}

// Inspect loads model in ONNX Runtime and returns its input and output.
// infaas serves models with exactly one input and one output tensor.
func Inspect(model []byte) (IO, error) {
	if err := Init(); err != nil {
		return IO{}, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return IO{}, fmt.Errorf("%w: %v", ErrBadModel, cleanORTError(err))
	}
	if len(ins) != 1 || len(outs) != 1 {
		return IO{}, fmt.Errorf("%w: infaas serves models with exactly one input and one output tensor; this one has %d inputs and %d outputs",
			ErrBadModel, len(ins), len(outs))
	}
	in, err := spec(ins[0])
	if err != nil {
		return IO{}, err
	}
	out, err := spec(outs[0])
	if err != nil {
		return IO{}, err
	}
	return IO{Input: in, Output: out}, nil
}

func spec(info ort.InputOutputInfo) (catalog.TensorSpec, error) {
	if info.OrtValueType != ort.ONNXTypeTensor {
		return catalog.TensorSpec{}, fmt.Errorf("%w: %s is a %s, not a tensor", ErrBadModel, info.Name, info.OrtValueType)
	}
	dt := fromORT(info.DataType)
	if ElementSize(dt) == 0 {
		return catalog.TensorSpec{}, fmt.Errorf("%w: %s has datatype %s, which infaas does not serve", ErrBadModel, info.Name, info.DataType)
	}
	shape := make([]int64, len(info.Dimensions))
	for i, d := range info.Dimensions {
		if d <= 0 {
			d = -1
		}
		shape[i] = d
	}
	return catalog.TensorSpec{Name: info.Name, DataType: dt, Shape: shape}, nil
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
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{io.Input.Name}, []string{io.Output.Name}, so)
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

// Session is one loaded model. Run is safe for concurrent use.
type Session struct {
	s     *ort.DynamicAdvancedSession
	io    IO
	inDT  ort.TensorElementDataType
	outDT ort.TensorElementDataType
	// outSample is the output's element count per sample when its shape is
	// static apart from the batch dimension, else -1.
	outSample int64
	outSize   int
	opts      Options
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
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{io.Input.Name}, []string{io.Output.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, cleanORTError(err))
	}
	inDT, _ := toORT(io.Input.DataType)
	outDT, _ := toORT(io.Output.DataType)
	return &Session{
		s: s, io: io, inDT: inDT, outDT: outDT,
		outSample: io.Output.SampleElements(),
		outSize:   ElementSize(io.Output.DataType),
		opts:      o,
	}, nil
}

// IO is the session's input and output description.
func (s *Session) IO() IO { return s.io }

// Close releases the session.
func (s *Session) Close() error { return s.s.Destroy() }

// Run runs a batch. input holds batch samples of the model's input, as raw
// little-endian bytes of its datatype. The output's bytes are written into
// out when it has the right size (nil or short allocates) and returned with
// the output's shape.
func (s *Session) Run(input []byte, batch int, out []byte) ([]byte, []int64, error) {
	shape := make([]int64, len(s.io.Input.Shape))
	copy(shape, s.io.Input.Shape)
	if len(shape) > 0 {
		shape[0] = int64(batch)
	}
	in, err := ort.NewCustomDataTensor(ort.Shape(shape), input, s.inDT)
	if err != nil {
		return nil, nil, fmt.Errorf("input tensor %v: %w", shape, err)
	}
	defer in.Destroy()

	if s.outSample > 0 {
		oshape := make([]int64, len(s.io.Output.Shape))
		copy(oshape, s.io.Output.Shape)
		oshape[0] = int64(batch)
		n := int(s.outSample) * batch * s.outSize
		if cap(out) < n {
			out = make([]byte, n)
		}
		out = out[:n]
		ot, err := ort.NewCustomDataTensor(ort.Shape(oshape), out, s.outDT)
		if err != nil {
			return nil, nil, fmt.Errorf("output tensor %v: %w", oshape, err)
		}
		defer ot.Destroy()
		if err := s.s.Run([]ort.Value{in}, []ort.Value{ot}); err != nil {
			return nil, nil, fmt.Errorf("run: %v", cleanORTError(err))
		}
		return out, oshape, nil
	}
	outs := []ort.Value{nil}
	if err := s.s.Run([]ort.Value{in}, outs); err != nil {
		return nil, nil, fmt.Errorf("run: %v", cleanORTError(err))
	}
	defer outs[0].Destroy()
	return valueBytes(outs[0], out)
}
