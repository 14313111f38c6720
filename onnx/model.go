package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// ErrNotONNX is returned by Parse when the bytes are not an ONNX model.
var ErrNotONNX = errors.New("not an ONNX model")

// DefaultDomain is the canonical name of the default operator set domain; an
// empty domain means the same.
const DefaultDomain = "ai.onnx"

// maxIRVersion bounds the IR versions Parse accepts. Real models are at most
// in the low teens; a huge value means the bytes merely happened to decode.
const maxIRVersion = 64

// Parse decodes and sanity-checks a serialized ModelProto. Arbitrary bytes
// often decode as some protobuf message, so Parse also requires what every
// runnable model has: an IR version, a graph with at least one node, at least
// one input and one output, and an op_type on every node. Failures wrap
// ErrNotONNX.
func Parse(data []byte) (*ModelProto, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrNotONNX)
	}
	m := &ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%w: decode protobuf: %v", ErrNotONNX, err)
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate applies Parse's sanity checks to a decoded or hand-built model.
// Failures wrap ErrNotONNX.
func Validate(m *ModelProto) error {
	switch {
	case m == nil:
		return fmt.Errorf("%w: nil model", ErrNotONNX)
	case m.GetIrVersion() <= 0 || m.GetIrVersion() > maxIRVersion:
		return fmt.Errorf("%w: ir_version %d is outside 1..%d", ErrNotONNX, m.GetIrVersion(), maxIRVersion)
	case m.GetGraph() == nil:
		return fmt.Errorf("%w: model has no graph", ErrNotONNX)
	}
	g := m.GetGraph()
	switch {
	case len(g.GetNode()) == 0:
		return fmt.Errorf("%w: graph %q has no nodes", ErrNotONNX, g.GetName())
	case len(g.GetInput()) == 0:
		return fmt.Errorf("%w: graph %q has no inputs", ErrNotONNX, g.GetName())
	case len(g.GetOutput()) == 0:
		return fmt.Errorf("%w: graph %q has no outputs", ErrNotONNX, g.GetName())
	}
	for i, n := range g.GetNode() {
		if n.GetOpType() == "" {
			return fmt.Errorf("%w: node %d (%q) has no op_type", ErrNotONNX, i, n.GetName())
		}
	}
	for i, v := range append(append([]*ValueInfoProto{}, g.GetInput()...), g.GetOutput()...) {
		if v.GetName() == "" {
			return fmt.Errorf("%w: graph input/output %d has no name", ErrNotONNX, i)
		}
	}
	return nil
}

// Marshal serializes a model deterministically (same model, same bytes).
// Unknown fields kept from Parse are written back unchanged.
func Marshal(m *ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal onnx model: %w", err)
	}
	return b, nil
}

// IsDefaultDomain reports whether domain names the default ONNX operator set.
func IsDefaultDomain(domain string) bool {
	return domain == "" || domain == DefaultDomain
}

// OpsetVersion returns the version of the operator set imported for domain
// ("" and "ai.onnx" are the same), or 0 when the model does not import it.
func OpsetVersion(m *ModelProto, domain string) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == domain || (IsDefaultDomain(domain) && IsDefaultDomain(o.GetDomain())) {
			return o.GetVersion()
		}
	}
	return 0
}

// SetOpsetVersion sets the version imported for domain, adding an import when
// there is none.
func SetOpsetVersion(m *ModelProto, domain string, version int64) {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == domain || (IsDefaultDomain(domain) && IsDefaultDomain(o.GetDomain())) {
			o.Version = version
			return
		}
	}
	if IsDefaultDomain(domain) {
		domain = ""
	}
	m.OpsetImport = append(m.OpsetImport, &OperatorSetIdProto{Domain: domain, Version: version})
}
