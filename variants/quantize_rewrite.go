package variants

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/infaas/infaas/onnx"
)

// quantizer rewrites one model's main graph in place. It is the mechanism
// behind QuantizeDynamic; all decisions about which nodes qualify are in
// matmulPlan, gemmPlan and convPlan.
type quantizer struct {
	m     *onnx.ModelProto
	g     *onnx.GraphProto
	inits map[string]*onnx.TensorProto
	// constants holds the main graph's Constant nodes by output name; their
	// tensor values count as constant weights, like initializers.
	constants map[string]*onnx.NodeProto
	// graphInputs holds the names of the declared graph inputs.
	graphInputs map[string]bool
	// names holds every name in use (values, nodes, in subgraphs too), so new
	// names never collide or shadow.
	names map[string]bool

	activations map[string]*quantActivation // by float activation name
	weights     map[weightKey]*quantWeight
	// biases holds the [M,1,…,1] copies of constant Conv biases, by the
	// original name and rank; the originals are dropped when unused.
	biases   map[biasKey]string
	newInits []*onnx.TensorProto

	matmuls, gemms, convs int
	skipped               []SkippedNode
}

// quantActivation names the outputs of one DynamicQuantizeLinear node.
type quantActivation struct{ q, scale, zeroPoint string }

// weightKey identifies one quantised form of a weight: the same initializer
// may be used transposed by a Gemm and as is by a MatMul.
type weightKey struct {
	name       string
	transposed bool
	alpha      float32
	conv       bool // per output channel (axis 0) rather than per column
}

// biasKey identifies a Conv bias reshaped to broadcast over an output of the
// given rank.
type biasKey struct {
	name string
	rank int
}

// quantWeight names the initializers that replace one float weight.
type quantWeight struct {
	q, scale, zeroPoint    string
	floatBytes, quantBytes int64
}

// rewritePlan is what a MatMul, Gemm or Conv rewrite needs; produced by
// matmulPlan, gemmPlan or convPlan once the node qualifies.
type rewritePlan struct {
	a, bias    string // activation input; bias input of a Gemm or Conv ("" if none)
	weightName string // the value the node reads as its weight
	weight     *onnx.TensorProto
	transpose  bool    // weight is [N, K] and must be transposed to [K, N]
	alpha      float32 // folded into the weight scale

	// conv is set for a Conv: ConvInteger takes these attributes as they are.
	conv *convPlanAttrs
}

func newQuantizer(m *onnx.ModelProto) *quantizer {
	q := &quantizer{
		m:           m,
		g:           m.GetGraph(),
		inits:       onnx.Initializers(m.GetGraph()),
		constants:   map[string]*onnx.NodeProto{},
		graphInputs: map[string]bool{},
		names:       map[string]bool{},
		activations: map[string]*quantActivation{},
		weights:     map[weightKey]*quantWeight{},
		biases:      map[biasKey]string{},
	}
	for _, v := range q.g.GetInput() {
		q.graphInputs[v.GetName()] = true
	}
	for _, n := range q.g.GetNode() {
		if n.GetOpType() == "Constant" && onnx.IsDefaultDomain(n.GetDomain()) && len(n.GetOutput()) == 1 {
			q.constants[n.GetOutput()[0]] = n
		}
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

// isCandidate reports whether n is a node the rewrite looks at.
func isCandidate(n *onnx.NodeProto) bool {
	if !onnx.IsDefaultDomain(n.GetDomain()) {
		return false
	}
	switch n.GetOpType() {
	case "MatMul", "Gemm", "Conv":
		return true
	}
	return false
}

// rewrite walks the main graph once, replacing each qualifying MatMul, Gemm
// or Conv by its int8 form at the same position, so the node order stays
// topological.
func (q *quantizer) rewrite() {
	var nodes []*onnx.NodeProto
	for _, n := range q.g.GetNode() {
		for _, sg := range onnx.Subgraphs(n) {
			q.skipNested(n, sg)
		}
		if !isCandidate(n) {
			nodes = append(nodes, n)
			continue
		}
		var p rewritePlan
		var reason string
		switch n.GetOpType() {
		case "MatMul":
			p, reason = q.matmulPlan(n)
		case "Gemm":
			p, reason = q.gemmPlan(n)
		default:
			p, reason = q.convPlan(n)
		}
		if reason == "" {
			var rewritten []*onnx.NodeProto
			if p.conv != nil {
				rewritten, reason = q.emitConv(n, p)
			} else {
				rewritten, reason = q.emit(n, p)
			}
			if reason == "" {
				nodes = append(nodes, rewritten...)
				switch n.GetOpType() {
				case "MatMul":
					q.matmuls++
				case "Gemm":
					q.gemms++
				default:
					q.convs++
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

// skipNested records the MatMul/Gemm/Conv nodes of a subgraph: only the main
// graph is rewritten.
func (q *quantizer) skipNested(parent *onnx.NodeProto, g *onnx.GraphProto) {
	for _, n := range g.GetNode() {
		if isCandidate(n) {
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
	w, reason := q.constantWeight(n.GetInput()[1], 2)
	if reason != "" {
		return rewritePlan{}, reason
	}
	return rewritePlan{a: n.GetInput()[0], weightName: n.GetInput()[1], weight: w, alpha: 1}, ""
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
	w, reason := q.constantWeight(in[1], 2)
	if reason != "" {
		return rewritePlan{}, reason
	}
	return rewritePlan{a: in[0], bias: bias, weightName: in[1], weight: w, transpose: transB == 1, alpha: alpha}, ""
}

// constantWeight returns the float32 weight called name, an initializer or a
// Constant node's value, of the given rank (a rank of 0 or less: any rank of
// at least -rank), or why it cannot be quantised.
func (q *quantizer) constantWeight(name string, rank int) (*onnx.TensorProto, string) {
	w, reason := q.constantTensor(name)
	if reason != "" {
		return nil, reason
	}
	dims := w.GetDims()
	switch {
	case onnx.DataType(w) != onnx.TensorProto_FLOAT:
		return nil, fmt.Sprintf("weight %q has type %s, want FLOAT", name, onnx.DataType(w))
	case rank > 0 && len(dims) != rank:
		return nil, fmt.Sprintf("weight %q has rank %d, want %d", name, len(dims), rank)
	case rank <= 0 && len(dims) < -rank:
		return nil, fmt.Sprintf("weight %q has rank %d, want at least %d", name, len(dims), -rank)
	case onnx.IsExternal(w):
		return nil, fmt.Sprintf("weight %q stores its data externally, which is not supported", name)
	}
	if n, err := onnx.NumElements(dims); err != nil || n == 0 {
		return nil, fmt.Sprintf("weight %q is empty or malformed (dims %v)", name, dims)
	}
	return w, ""
}

// constantTensor returns the tensor called name when it is constant: an
// initializer callers cannot override, or the value attribute of a Constant
// node of the main graph.
func (q *quantizer) constantTensor(name string) (*onnx.TensorProto, string) {
	if w, ok := q.inits[name]; ok {
		if q.graphInputs[name] && q.m.GetIrVersion() >= 4 {
			return nil, fmt.Sprintf("weight %q is also a graph input, so callers may override it", name)
		}
		return w, ""
	}
	c, ok := q.constants[name]
	if !ok {
		return nil, fmt.Sprintf("weight %q is not a constant initializer or Constant node", name)
	}
	if len(c.GetAttribute()) != 1 || c.GetAttribute()[0].GetName() != "value" || c.GetAttribute()[0].GetT() == nil {
		return nil, fmt.Sprintf("weight %q is a Constant node without a single tensor value attribute", name)
	}
	return c.GetAttribute()[0].GetT(), ""
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
	qa, nodes := q.quantizeActivation(p.a)
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

// quantizeActivation returns the names of activation a's uint8 form, and the
// DynamicQuantizeLinear node that computes it on its first use (no node on
// later uses: one quantisation serves every reader).
func (q *quantizer) quantizeActivation(a string) (*quantActivation, []*onnx.NodeProto) {
	if qa, ok := q.activations[a]; ok {
		return qa, nil
	}
	qa := &quantActivation{
		q:         q.fresh(a + "_quantized"),
		scale:     q.fresh(a + "_scale"),
		zeroPoint: q.fresh(a + "_zero_point"),
	}
	q.activations[a] = qa
	return qa, []*onnx.NodeProto{onnx.NewNode("DynamicQuantizeLinear", q.fresh(a+"_DynamicQuantizeLinear"),
		[]string{a}, []string{qa.q, qa.scale, qa.zeroPoint})}
}

// quantizeWeight returns the int8 form of p's weight as a [K, N] matrix with
// per-column scales, creating its initializers on first use.
func (q *quantizer) quantizeWeight(p rewritePlan) (*quantWeight, string) {
	w := p.weight
	key := weightKey{name: p.weightName, transposed: p.transpose, alpha: p.alpha}
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
		return nil, fmt.Sprintf("weight %q: %v", p.weightName, err)
	}
	for i := range scales {
		scales[i] *= p.alpha
	}
	base := p.weightName
	if p.transpose {
		base += "_T"
	}
	qw := &quantWeight{
		q:         q.fresh(base + "_quantized"),
		scale:     q.fresh(base + "_scale"),
		zeroPoint: q.fresh(base + "_zero_point"),
	}
	// Stored as uint8 with zero point 128, as Conv weights are (the same
	// values; QuantizeDynamic says why): ORT's u8u8 integer GEMM is exact on
	// every x86 CPU, while its u8s8 one saturates int16 sums on CPUs with
	// AVX2 but no VNNI.
	inits := []*onnx.TensorProto{
		onnx.NewUint8Tensor(qw.q, []int64{int64(k), int64(n)}, shiftedWeights(wq)),
		onnx.NewFloatTensor(qw.scale, []int64{int64(n)}, scales),
		onnx.NewUint8Tensor(qw.zeroPoint, nil, []uint8{weightZeroPoint}),
	}
	q.record(key, qw, w, inits)
	return qw, ""
}

// record adds a quantised weight's initialisers to the graph and
// remembers it under key (for reuse by other nodes reading the same
// weight), counting the bytes before and after.
func (q *quantizer) record(key weightKey, qw *quantWeight, w *onnx.TensorProto, inits []*onnx.TensorProto) {
	for _, t := range inits {
		qw.quantBytes += onnx.DataBytes(t)
	}
	qw.floatBytes = onnx.DataBytes(w)
	q.newInits = append(q.newInits, inits...)
	q.weights[key] = qw
}

// dropUnusedWeights removes the float32 weights that were quantised, and the
// Conv biases that were reshaped, that nothing reads any more (a node, a
// subgraph, a graph output): initializers, their graph inputs for old IR
// versions, and Constant nodes. It returns how many quantised weights had to
// stay.
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
	for key := range q.biases {
		if !used[key.name] {
			drop[key.name] = true
		}
	}
	q.g.Initializer = slices.DeleteFunc(q.g.Initializer, func(t *onnx.TensorProto) bool { return drop[t.GetName()] })
	q.g.Input = slices.DeleteFunc(q.g.Input, func(v *onnx.ValueInfoProto) bool { return drop[v.GetName()] })
	q.g.ValueInfo = slices.DeleteFunc(q.g.ValueInfo, func(v *onnx.ValueInfoProto) bool { return drop[v.GetName()] })
	q.g.Node = slices.DeleteFunc(q.g.Node, func(n *onnx.NodeProto) bool {
		return len(n.GetOutput()) == 1 && drop[n.GetOutput()[0]] && q.constants[n.GetOutput()[0]] == n
	})
	return len(keptNames)
}
