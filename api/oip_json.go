package api

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// A hand-written parser for the Open Inference Protocol's JSON inference
// request. encoding/json would scan a tensor's data array twice before
// handing it over and build a []any of boxed numbers; this parser reads
// each number once, straight into the tensor's raw little-endian bytes, and
// reports malformed JSON with its line and column. Parameters, which are
// small and free-form, are decoded with encoding/json (UseNumber).

// maxJSONDepth bounds nesting, so a hostile body cannot exhaust the stack.
const maxJSONDepth = 64

// Parameters of the HTTP binary tensor data extension.
const (
	paramBinarySize     = "binary_data_size"   // input or output: bytes in the binary part
	paramBinaryOutput   = "binary_data"        // requested output: answer it in binary
	paramClassification = "classification"     // requested output: its top N classes
	paramBinaryAll      = "binary_data_output" // request: answer every output in binary
)

// jsonRequest is a decoded $inference_request, before the model named by the
// URL is added.
type jsonRequest struct {
	id      string
	params  map[string]any
	inputs  []Tensor
	outputs []string
	// classification: the requested outputs' top-N asks.
	classification map[string]int
	// binaryAll and binaryOutputs: which outputs the client wants in binary.
	binaryAll     bool
	binaryOutputs map[string]bool
}

// wantsBinary says whether an output is to be answered in binary.
func (r *jsonRequest) wantsBinary(name string) bool {
	if b, ok := r.binaryOutputs[name]; ok {
		return b
	}
	return r.binaryAll
}

// jsonInput is one $request_input while its object is being parsed.
type jsonInput struct {
	t          Tensor
	hasShape   bool
	dataAt     int   // offset of a data value still to parse; -1: none
	hasData    bool  // data parsed into t.Data
	binarySize int64 // binary_data_size parameter; -1: none
}

// decodeJSONRequest parses an inference request body. headerLen is the
// Inference-Header-Content-Length of the binary tensor data extension: the
// JSON is body[:headerLen] and the binary tensors follow; -1 when absent.
func decodeJSONRequest(body []byte, headerLen int) (*jsonRequest, error) {
	var bin []byte
	if headerLen >= 0 {
		if headerLen > len(body) {
			return nil, fmt.Errorf("%w: Inference-Header-Content-Length is %d, but the body has only %d bytes",
				ErrBadRequest, headerLen, len(body))
		}
		body, bin = body[:headerLen], body[headerLen:]
	}
	p := &jsonParser{buf: body}
	req := &jsonRequest{}
	var inputs []*jsonInput
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "id":
			if !p.null() {
				req.id, err = p.stringValue("id")
			}
		case "parameters":
			req.params, err = p.params()
		case "inputs":
			inputs = inputs[:0]
			err = p.array(func() error {
				in, err := p.input()
				inputs = append(inputs, in)
				return err
			})
		case "outputs":
			req.outputs = req.outputs[:0]
			if !p.null() {
				err = p.array(func() error { return p.requestedOutput(req) })
			}
		default:
			err = p.skip(0)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.ws(); p.pos != len(p.buf) {
		return nil, p.syntaxError("expected the end of the request after its object")
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: the request has no inputs; send at least one", ErrBadRequest)
	}
	if b, ok := req.params[paramBinaryAll].(bool); ok {
		req.binaryAll = b
	}
	req.inputs = make([]Tensor, len(inputs))
	for i, in := range inputs {
		if bin, err = in.finish(p, bin); err != nil {
			return nil, err
		}
		req.inputs[i] = in.t
	}
	if len(bin) > 0 {
		return nil, fmt.Errorf("%w: %d bytes of binary data follow the JSON that no input's %s claims",
			ErrBadRequest, len(bin), paramBinarySize)
	}
	return req, nil
}

// input parses one $request_input. Its data is parsed in place when the
// datatype and shape came before it, as every client writes them, and
// afterwards otherwise.
func (p *jsonParser) input() (*jsonInput, error) {
	in := &jsonInput{dataAt: -1, binarySize: -1}
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "name":
			in.t.Name, err = p.stringValue("input name")
		case "datatype":
			in.t.Datatype, err = p.stringValue("datatype")
		case "shape":
			in.t.Shape = in.t.Shape[:0]
			in.hasShape = true
			err = p.array(func() error {
				d, err := p.integer("shape dimension")
				in.t.Shape = append(in.t.Shape, d)
				return err
			})
		case "parameters":
			var params map[string]any
			if params, err = p.params(); err == nil {
				in.binarySize, err = binarySizeParam(params)
			}
		case "data":
			in.hasData = false
			if in.t.Datatype == "" || !in.hasShape {
				in.dataAt = p.pos
				return p.skip(0)
			}
			in.dataAt = -1
			in.t.Data, err = p.tensorData(in.t)
			in.hasData = err == nil
		default:
			err = p.skip(0)
		}
		return err
	})
	return in, err
}

// finish checks a parsed input and gives it its data: parsed already, parsed
// now from where it was skipped, or cut from the binary part. It returns
// what is left of the binary part.
func (in *jsonInput) finish(p *jsonParser, bin []byte) ([]byte, error) {
	if !in.hasShape {
		return nil, fmt.Errorf("%w: input %q has no shape", ErrBadRequest, in.t.Name)
	}
	count, size, err := tensorHeader("input", in.t.Name, in.t.Datatype, in.t.Shape)
	if err != nil {
		return nil, err
	}
	label := "input " + strconv.Quote(in.t.Name)
	hasData := in.hasData || in.dataAt >= 0
	switch {
	case in.binarySize >= 0 && hasData:
		return nil, fmt.Errorf("%w: %s has both data and %s; send one", ErrBadRequest, label, paramBinarySize)
	case in.binarySize >= 0:
		if in.binarySize > int64(len(bin)) {
			return nil, fmt.Errorf("%w: %s: %s is %d, but only %d bytes of binary data are left",
				ErrBadRequest, label, paramBinarySize, in.binarySize, len(bin))
		}
		in.t.Data, bin = bin[:in.binarySize:in.binarySize], bin[in.binarySize:]
		return bin, checkRaw(label, in.t.Datatype, in.t.Shape, count, size, in.t.Data)
	case !hasData:
		return nil, fmt.Errorf("%w: %s has no data", ErrBadRequest, label)
	case in.dataAt >= 0:
		q := &jsonParser{buf: p.buf, pos: in.dataAt}
		if in.t.Data, err = q.tensorData(in.t); err != nil {
			return nil, err
		}
	}
	return bin, nil
}

func binarySizeParam(params map[string]any) (int64, error) {
	v, ok := params[paramBinarySize]
	if !ok {
		return -1, nil
	}
	if n, ok := v.(json.Number); ok {
		if size, err := strconv.ParseInt(string(n), 10, 64); err == nil && size >= 0 {
			return size, nil
		}
	}
	return 0, fmt.Errorf("%w: %s must be a non-negative integer, got %s", ErrBadRequest, paramBinarySize, describe(v))
}

// requestedOutput parses one $request_output.
func (p *jsonParser) requestedOutput(req *jsonRequest) error {
	var name string
	var params map[string]any
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "name":
			name, err = p.stringValue("output name")
		case "parameters":
			params, err = p.params()
		default:
			err = p.skip(0)
		}
		return err
	})
	if err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("%w: a requested output has no name", ErrBadRequest)
	}
	req.outputs = append(req.outputs, name)
	if v, ok := params[paramClassification]; ok {
		n, err := classificationCount(v)
		if err != nil {
			return err
		}
		if req.classification == nil {
			req.classification = map[string]int{}
		}
		req.classification[name] = n
	}
	if b, ok := params[paramBinaryOutput].(bool); ok {
		if req.binaryOutputs == nil {
			req.binaryOutputs = map[string]bool{}
		}
		req.binaryOutputs[name] = b
	}
	return nil
}

// tensorData parses a data array, flat or nested row-major, into the raw
// bytes of t's datatype, and checks that it holds as many elements as t's
// shape.
func (p *jsonParser) tensorData(t Tensor) ([]byte, error) {
	label := "input " + strconv.Quote(t.Name)
	d := &dataDecoder{p: p, label: label, datatype: t.Datatype, shape: t.Shape, leafDepth: -1}
	switch t.Datatype {
	case "BOOL":
		d.kind, d.width = kindBool, 1
	case "INT8", "INT16", "INT32", "INT64":
		d.kind = kindInt
	case "UINT8", "UINT16", "UINT32", "UINT64":
		d.kind = kindUint
	case "FP32":
		d.kind, d.width = kindFloat, 4
	case "FP64":
		d.kind, d.width = kindFloat, 8
	case datatypeBytes:
		d.kind = kindBytes
	case "FP16", "BF16":
		return nil, fmt.Errorf("%w: %s: %s data cannot be sent as JSON numbers; send it in binary "+
			"(the %s parameter of the binary tensor data extension, or gRPC raw_input_contents)",
			ErrBadRequest, label, t.Datatype, paramBinarySize)
	default:
		_, err := elementSize(t.Datatype)
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	if d.kind == kindInt || d.kind == kindUint {
		d.width, _ = elementSize(t.Datatype)
		bits := uint(d.width * 8)
		if d.kind == kindInt {
			d.max, d.negMax = 1<<(bits-1)-1, 1<<(bits-1)
		} else {
			d.max = 1<<bits - 1 // for UINT64 the shift wraps to 0: 2⁶⁴-1
		}
	}
	count, err := inputCount(label, t.Shape)
	if err != nil {
		return nil, err
	}
	if d.width > 0 {
		// Each element takes at least two bytes of JSON ("0,"): never
		// reserve more than the body can hold, whatever the shape claims.
		d.out = make([]byte, 0, min(count, (len(p.buf)-p.pos)/2+1)*d.width)
	}
	p.ws()
	if p.peek() != '[' {
		return nil, fmt.Errorf("%w: %s: data must be an array, found %s", ErrBadRequest, label, p.found())
	}
	if err := d.array(0); err != nil {
		return nil, err
	}
	if d.leafDepth > 0 && d.leafDepth != len(t.Shape)-1 {
		return nil, d.nestingError()
	}
	if d.count != count {
		return nil, fmt.Errorf("%w: %s: shape %v holds %d elements, but data has %d",
			ErrBadRequest, label, t.Shape, count, d.count)
	}
	return d.out, nil
}

type elemKind uint8

const (
	kindBool elemKind = iota
	kindInt
	kindUint
	kindFloat
	kindBytes
)

// dataDecoder appends the elements of one data array to out.
type dataDecoder struct {
	p        *jsonParser
	label    string
	datatype string
	shape    []int64
	kind     elemKind
	width    int    // bytes per element; 0 for BYTES
	max      uint64 // kindInt, kindUint: the largest value
	negMax   uint64 // kindInt: the magnitude of the smallest value
	out      []byte // raw little-endian elements
	count    int    // elements so far
	// leafDepth is the depth of the arrays holding elements (0: flat);
	// nested tells whether any array held arrays.
	leafDepth int
	nested    bool
}

// array parses the array at p.pos, at the given depth (0: the data array
// itself). Nested arrays must follow the shape, one level per dimension.
func (d *dataDecoder) array(depth int) error {
	p := d.p
	if depth >= maxJSONDepth {
		return p.syntaxError("data nested deeper than %d levels", maxJSONDepth)
	}
	p.pos++ // '['
	p.ws()
	n := 0
	if p.peek() != ']' {
		for {
			p.ws()
			if p.peek() == '[' {
				if d.leafDepth >= 0 && d.leafDepth <= depth {
					return d.nestingError()
				}
				d.nested = true
				if err := d.array(depth + 1); err != nil {
					return err
				}
			} else {
				if d.leafDepth < 0 {
					d.leafDepth = depth
				} else if d.leafDepth != depth {
					return d.nestingError()
				}
				if err := d.element(); err != nil {
					return err
				}
			}
			n++
			p.ws()
			if p.peek() == ']' {
				break
			}
			if p.peek() != ',' {
				return p.syntaxError("expected ',' or ']' in the data array")
			}
			p.pos++
		}
	}
	p.pos++ // ']'
	if (depth > 0 || d.nested) && (depth >= len(d.shape) || int64(n) != d.shape[depth]) {
		return d.nestingError()
	}
	return nil
}

func (d *dataDecoder) nestingError() error {
	return fmt.Errorf("%w: %s: nested data does not follow shape %v; nest one array per dimension or send it flat",
		ErrBadRequest, d.label, d.shape)
}

// element parses one element at p.pos and appends its raw bytes.
func (d *dataDecoder) element() error {
	p := d.p
	switch d.kind {
	case kindBool:
		switch {
		case p.literal("true"):
			d.out = append(d.out, 1)
		case p.literal("false"):
			d.out = append(d.out, 0)
		default:
			return d.typeError("true or false")
		}
	case kindInt, kindUint:
		if c := p.peek(); c != '-' && !isDigit(c) {
			return d.typeError("an integer")
		}
		n, err := p.number()
		if err != nil {
			return err
		}
		if !n.integer {
			return d.elemError("%s is not an integer", n.text)
		}
		mag, ok := n.magnitude()
		switch {
		case ok && (!n.neg || mag == 0) && mag <= d.max:
		case ok && n.neg && mag <= d.negMax:
			mag = -mag // two's complement
		default:
			lo := "-" + strconv.FormatUint(d.negMax, 10)
			if d.negMax == 0 {
				lo = "0"
			}
			return d.elemError("%s does not fit %s (%s to %d)", n.text, d.datatype, lo, d.max)
		}
		d.out = appendUint(d.out, mag, d.width)
	case kindFloat:
		if c := p.peek(); c != '-' && !isDigit(c) {
			return d.typeError("a number")
		}
		n, err := p.number()
		if err != nil {
			return err
		}
		f, ok := n.float(d.width * 8)
		if !ok {
			return d.elemError("%s does not fit %s", n.text, d.datatype)
		}
		if d.width == 4 {
			d.out = binary.LittleEndian.AppendUint32(d.out, math.Float32bits(float32(f)))
		} else {
			d.out = binary.LittleEndian.AppendUint64(d.out, math.Float64bits(f))
		}
	case kindBytes:
		if p.peek() != '"' {
			return d.typeError("a string")
		}
		s, err := p.strBytes()
		if err != nil {
			return err
		}
		d.out = appendBytesElement(d.out, s)
	}
	d.count++
	return nil
}

func (d *dataDecoder) typeError(want string) error {
	return d.elemError("%s data must be %s, found %s", d.datatype, want, d.p.found())
}

func (d *dataDecoder) elemError(format string, args ...any) error {
	return fmt.Errorf("%w: %s: element %d: %s", ErrBadRequest, d.label, d.count, fmt.Sprintf(format, args...))
}

// maxClassification bounds a classification request's N.
const maxClassification = 1000

// classificationCount reads a requested output's classification parameter:
// a whole number of classes from 1 to maxClassification.
func classificationCount(v any) (int, error) {
	var n int64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = strconv.ParseInt(string(x), 10, 64)
	case int64:
		n = x
	default:
		err = fmt.Errorf("not a number")
	}
	if err != nil || n < 1 || n > maxClassification {
		return 0, fmt.Errorf("%w: classification asks for the top N classes, a whole number from 1 to %d; got %s",
			ErrBadRequest, maxClassification, describe(v))
	}
	return int(n), nil
}
