// Package inference holds the values of one inference request and answer
// as the protocol front ends (api) and the controller exchange them,
// independent of the wire format.
package inference

// Tensor is one named tensor with its data as raw little-endian bytes
// (BYTES tensors: each element a 4-byte little-endian length, then the bytes,
// as in the Open Inference Protocol's raw binary form).
type Tensor struct {
	Name     string
	Datatype string
	Shape    []int64
	Data     []byte
}

// Requirements are a query's model-less requirements, carried as request
// parameters latency_ms, min_accuracy, max_cost and strict.
type Requirements struct {
	LatencyMs   float64 // 0: none
	MinAccuracy float64 // percent; 0: none
	MaxCost     float64 // USD per 1,000 queries; 0: none
	Strict      bool    // refuse rather than serve best effort
	Explain     bool    // return the decision's explanation
}

// InferRequest is an Open Inference Protocol inference request after
// decoding. Model is the {name} of the URL or model_name: a variant, an
// architecture, or a use case written "task/dataset" (over HTTP, "task.dataset"
// is accepted too, as the path cannot hold a slash unescaped).
type InferRequest struct {
	Model        string
	Version      string
	ID           string
	Requirements Requirements
	Inputs       []Tensor
	Outputs      []string // requested output names; empty means all
}

// InferResponse is the answer; Parameters hold what infaas reports
// (variant, worker, queue_ms, compute_ms, met, ...).
type InferResponse struct {
	Model      string
	Version    string
	ID         string
	Parameters map[string]any
	Outputs    []Tensor
}

// ModelMetadata answers GET /v2/models/{name} and ModelMetadata.
type ModelMetadata struct {
	Name     string
	Versions []string
	Platform string
	Inputs   []TensorMetadata
	Outputs  []TensorMetadata
}

// TensorMetadata describes one input or output.
type TensorMetadata struct {
	Name     string
	Datatype string
	Shape    []int64
}
