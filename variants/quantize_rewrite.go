package variants

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/infaas/infaas/onnx"
)

// quantizer rewrites one model's main graph in place. It is the mechanism
// behind QuantizeDynamic; all decisions about which nodes qualify are in
// matmulPlan and gemmPlan.
type quantizer struct {
	m     *onnx.ModelProto
	g     *onnx.GraphProto
	inits map[string]*onnx.TensorProto
	// graphInputs holds the names of the declared graph inputs.
	graphInputs map[string]bool
	// names holds every name in use (values, nodes, in subgraphs too), so new
	// names never collide or shadow.
	names map[string]bool

	activations map[string]*quantActivation // by float activation name
	weights     map[weightKey]*quantWeight
	newInits    []*onnx.TensorProto

	matmuls, gemms int
	skipped        []SkippedNode
}

// quantActivation names the outputs of one DynamicQuantizeLinear node.
type quantActivation struct{ q, scale, zeroPoint string }

// weightKey identifies one quantised form of a weight: the same initializer
// may be used transposed by a Gemm and as is by a MatMul.
type weightKey struct {
	name       string
	transposed bool
	alpha      float32
}

// quantWeight names the initializers that replace one float weight.
type quantWeight struct {
	q, scale, zeroPoint    string
	floatBytes, quantBytes int64
}

// rewritePlan is what a MatMul or Gemm rewrite needs; produced by matmulPlan or
// gemmPlan once the node qualifies.
type rewritePlan struct {
	a, bias   string // activation input; bias input of a Gemm ("" if none)
	weight    *onnx.TensorProto
	transpose bool    // weight is [N, K] and must be transposed to [K, N]
	alpha     float32 // folded into the weight scale
}

func newQuantizer(m *onnx.ModelProto) *quantizer {
	q := &quantizer{
		m:           m,
		g:           m.GetGraph(),
		inits:       onnx.Initializers(m.GetGraph()),
		graphInputs: map[string]bool{},
		names:       map[string]bool{},
		activations: map[string]*quantActivation{},
		weights:     map[weightKey]*quantWeight{},
	}
	for _, v := range q.g.GetInput() {
		q.graphInputs[v.GetName()] = true
	}
	q.collectNames(q.g)
	return q
}

func (q *quantizer) collectNames(g *onnx.GraphProto) {
	for _, vs := range [][]*onnx.ValueInfoProto{g.GetInput(), g.GetOutput(), g.GetValueInfo()} {
		for _, v := range vs {
			q.names[v.GetName()] = true
		}
	}
	for _, t := range g.GetInitializer() {
		q.names[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		q.names[n.GetName()] = true
		for _, s := range append(append([]string{}, n.GetInput()...), n.GetOutput()...) {
			q.names[s] = true
		}
		for _, sg := range onnx.Subgraphs(n) {
			q.collectNames(sg)
		}
	}
}

// fresh returns a name based on base that is not yet used, and reserves it.
func (q *quantizer) fresh(base string) string {
	name := base
	for i := 1; q.names[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	q.names[name] = true
	return name
}

// rewrite walks the main graph once, replacing each qualifying MatMul/Gemm by
// its int8 form at the same position, so the node order stays topological.
func (q *quantizer) rewrite() {
	var nodes []*onnx.NodeProto
	for _, n := range q.g.GetNode() {
		for _, sg := range onnx.Subgraphs(n) {
			q.skipNested(n, sg)
		}
		if !onnx.IsDefaultDomain(n.GetDomain()) || (n.GetOpType() != "MatMul" && n.GetOpType() != "Gemm") {
			nodes = append(nodes, n)
			continue
		}
		var p rewritePlan
		var reason string
		if n.GetOpType() == "MatMul" {
			p, reason = q.matmulPlan(n)
		} else {
			p, reason = q.gemmPlan(n)
		}
		if reason == "" {
			var rewritten []*onnx.NodeProto
			rewritten, reason = q.emit(n, p)
			if reason == "" {
				nodes = append(nodes, rewritten...)
				if n.GetOpType() == "MatMul" {
					q.matmuls++
				} else {
					q.gemms++
				}
				continue
			}
		}
		q.skip(n, reason)
		nodes = append(nodes, n)
	}
	q.g.Node = nodes
	q.g.Initializer = append(q.g.Initializer, q.newInits...)
	if q.m.GetIrVersion() < 4 {
		// Before IR version 4 every initializer is also a graph input.
		for _, t := range q.newInits {
			q.g.Input = append(q.g.Input, onnx.NewValueInfo(t.GetName(), onnx.DataType(t), t.GetDims()))
		}
	}
}

// skipNested records the MatMul/Gemm nodes of a subgraph: only the main graph
// is rewritten.
func (q *quantizer) skipNested(parent *onnx.NodeProto, g *onnx.GraphProto) {
	for _, n := range g.GetNode() {
		if onnx.IsDefaultDomain(n.GetDomain()) && (n.GetOpType() == "MatMul" || n.GetOpType() == "Gemm") {
			q.skip(n, fmt.Sprintf("inside a subgraph of %s node %q; only the main graph is rewritten", parent.GetOpType(), nodeName(parent)))
		}
		for _, sg := range onnx.Subgraphs(n) {
			q.skipNested(n, sg)
		}
	}
}

func (q *quantizer) skip(n *onnx.NodeProto, reason string) {
	q.skipped = append(q.skipped, SkippedNode{Node: nodeName(n), OpType: n.GetOpType(), Reason: reason})
}

func nodeName(n *onnx.NodeProto) string {
	if n.GetName() != "" || len(n.GetOutput()) == 0 {
		return n.GetName()
	}
	return n.GetOutput()[0]
}

func (q *quantizer) matmulPlan(n *onnx.NodeProto) (rewritePlan, string) {
	if len(n.GetInput()) != 2 || len(n.GetOutput()) != 1 {
		return rewritePlan{}, fmt.Sprintf("has %d inputs and %d outputs, want 2 and 1", len(n.GetInput()), len(n.GetOutput()))
	}
	w, reason := q.constantWeight(n.GetInput()[1])
	if reason != "" {
		return rewritePlan{}, reason
	}
	return rewritePlan{a: n.GetInput()[0], weight: w, alpha: 1}, ""
}

func (q *quantizer) gemmPlan(n *onnx.NodeProto) (rewritePlan, string) {
	in := n.GetInput()
	if len(in) < 2 || len(in) > 3 || len(n.GetOutput()) != 1 {
		return rewritePlan{}, fmt.Sprintf("has %d inputs and %d outputs, want 2 or 3 and 1", len(in), len(n.GetOutput()))
	}
	transA, err := onnx.AttrInt(n, "transA", 0)
	if err != nil {
		return rewritePlan{}, err.Error()
	}
	transB, err := onnx.AttrInt(n, "transB", 0)
	if err != nil {
		return rewritePlan{}, err.Error()
	}
	alpha, err := onnx.AttrFloat(n, "alpha", 1)
	if err != nil {
		return rewritePlan{}, err.Error()
	}
	beta, err := onnx.AttrFloat(n, "beta", 1)
	if err != nil {
		return rewritePlan{}, err.Error()
	}
	bias := ""
	if len(in) == 3 {
		bias = in[2]
	}
	switch {
	case transA != 0:
		return rewritePlan{}, fmt.Sprintf("Gemm with transA=%d is not supported (only transA=0)", transA)
	case transB != 0 && transB != 1:
		return rewritePlan{}, fmt.Sprintf("Gemm with transB=%d is not valid", transB)
	case bias != "" && beta != 1:
		return rewritePlan{}, fmt.Sprintf("Gemm with a bias and beta=%g is not supported (only beta=1)", beta)
	}
	w, reason := q.constantWeight(in[1])
	if reason != "" {
		return rewritePlan{}, reason
	}
	return rewritePlan{a: in[0], bias: bias, weight: w, transpose: transB == 1, alpha: alpha}, ""
}

// constantWeight returns the float32 rank-2 initializer called name, or why it
// cannot be quantised.
func (q *quantizer) constantWeight(name string) (*onnx.TensorProto, string) {
	w, ok := q.inits[name]
	switch {
	case !ok:
		return nil, fmt.Sprintf("weight %q is not a constant initializer", name)
	case q.graphInputs[name] && q.m.GetIrVersion() >= 4:
		return nil, fmt.Sprintf("weight %q is also a graph input, so callers may override it", name)
	case onnx.DataType(w) != onnx.TensorProto_FLOAT:
		return nil, fmt.Sprintf("weight %q has type %s, want FLOAT", name, onnx.DataType(w))
	case len(w.GetDims()) != 2:
		return nil, fmt.Sprintf("weight %q has rank %d, want 2", name, len(w.GetDims()))
	case w.GetDims()[0] == 0 || w.GetDims()[1] == 0:
		return nil, fmt.Sprintf("weight %q is empty (dims %v)", name, w.GetDims())
	case onnx.IsExternal(w):
		return nil, fmt.Sprintf("weight %q stores its data externally, which is not supported", name)
	}
	return w, ""
}

// emit returns the nodes that replace n, creating the quantised weight and the
// activation quantisation on first use; a non-empty reason means the weight's
// values could not be quantised and n stays as it is.
func (q *quantizer) emit(n *onnx.NodeProto, p rewritePlan) ([]*onnx.NodeProto, string) {
	base := nodeName(n)
	qw, reason := q.quantizeWeight(p)
	if reason != "" {
		return nil, reason
	}
	var nodes []*onnx.NodeProto
	qa, ok := q.activations[p.a]
	if !ok {
		qa = &quantActivation{
			q:         q.fresh(p.a + "_quantized"),
			scale:     q.fresh(p.a + "_scale"),
			zeroPoint: q.fresh(p.a + "_zero_point"),
		}
		q.activations[p.a] = qa
		nodes = append(nodes, onnx.NewNode("DynamicQuantizeLinear", q.fresh(p.a+"_DynamicQuantizeLinear"),
			[]string{p.a}, []string{qa.q, qa.scale, qa.zeroPoint}))
	}
	out := n.GetOutput()[0]
	product := q.fresh(base + "_MatMulInteger_output")
	product32 := q.fresh(base + "_Cast_output")
	scale := q.fresh(base + "_scale")
	scaled := out
	if p.bias != "" {
		scaled = q.fresh(base + "_Mul_output")
	}
	nodes = append(nodes,
		onnx.NewNode("MatMulInteger", q.fresh(base+"_MatMulInteger"),
			[]string{qa.q, qw.q, qa.zeroPoint, qw.zeroPoint}, []string{product}),
		onnx.NewNode("Cast", q.fresh(base+"_Cast"), []string{product}, []string{product32},
			onnx.IntAttr("to", int64(onnx.TensorProto_FLOAT))),
		onnx.NewNode("Mul", q.fresh(base+"_scale_Mul"), []string{qa.scale, qw.scale}, []string{scale}),
		onnx.NewNode("Mul", q.fresh(base+"_Mul"), []string{product32, scale}, []string{scaled}),
	)
	if p.bias != "" {
		nodes = append(nodes, onnx.NewNode("Add", q.fresh(base+"_bias_Add"), []string{scaled, p.bias}, []string{out}))
	}
	return nodes, ""
}

// quantizeWeight returns the int8 form of p's weight as a [K, N] matrix with
// per-column scales, creating its initializers on first use.
func (q *quantizer) quantizeWeight(p rewritePlan) (*quantWeight, string) {
	w := p.weight
	key := weightKey{name: w.GetName(), transposed: p.transpose, alpha: p.alpha}
	if qw, ok := q.weights[key]; ok {
		return qw, ""
	}
	values, err := onnx.TensorFloats(w)
	if err != nil {
		return nil, err.Error()
	}
	k, n := int(w.GetDims()[0]), int(w.GetDims()[1])
	if p.transpose {
		values = transpose(values, k, n)
		k, n = n, k
	}
	wq, scales, err := symmetricPerColumn(values, k, n)
	if err != nil {
		return nil, fmt.Sprintf("weight %q: %v", w.GetName(), err)
	}
	for i := range scales {
		scales[i] *= p.alpha
	}
	base := w.GetName()
	if p.transpose {
		base += "_T"
	}
	qw := &quantWeight{
		q:         q.fresh(base + "_quantized"),
		scale:     q.fresh(base + "_scale"),
		zeroPoint: q.fresh(base + "_zero_point"),
	}
	inits := []*onnx.TensorProto{
		onnx.NewInt8Tensor(qw.q, []int64{int64(k), int64(n)}, wq),
		onnx.NewFloatTensor(qw.scale, []int64{int64(n)}, scales),
		onnx.NewInt8Tensor(qw.zeroPoint, nil, []int8{0}),
	}
	for _, t := range inits {
		qw.quantBytes += onnx.DataBytes(t)
	}
	qw.floatBytes = onnx.DataBytes(w)
	q.newInits = append(q.newInits, inits...)
	q.weights[key] = qw
	return qw, ""
}

// dropUnusedWeights removes the float32 weights that were quantised and that
// nothing reads any more (a node, a subgraph, a graph output), from the
// initializers and, for old IR versions, from the graph inputs. It returns how
// many quantised weights had to stay.
func (q *quantizer) dropUnusedWeights() (kept int) {
	used := map[string]bool{}
	var markUses func(g *onnx.GraphProto)
	markUses = func(g *onnx.GraphProto) {
		for _, n := range g.GetNode() {
			for _, in := range n.GetInput() {
				used[in] = true
			}
			for _, sg := range onnx.Subgraphs(n) {
				markUses(sg)
			}
		}
		for _, o := range g.GetOutput() {
			used[o.GetName()] = true
		}
	}
	markUses(q.g)

	drop := map[string]bool{}
	keptNames := map[string]bool{}
	for key := range q.weights {
		if used[key.name] {
			keptNames[key.name] = true
		} else {
			drop[key.name] = true
		}
	}
	q.g.Initializer = slices.DeleteFunc(q.g.Initializer, func(t *onnx.TensorProto) bool { return drop[t.GetName()] })
	q.g.Input = slices.DeleteFunc(q.g.Input, func(v *onnx.ValueInfoProto) bool { return drop[v.GetName()] })
	q.g.ValueInfo = slices.DeleteFunc(q.g.ValueInfo, func(v *onnx.ValueInfoProto) bool { return drop[v.GetName()] })
	return len(keptNames)
}
