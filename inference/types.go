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
	// Classification asks, per requested output, for its top N classes
	// instead of its scores (the Open Inference Protocol classification
	// extension): a BYTES tensor [batch, N] of "score:index[:label]".
	Classification map[string]int
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

// ModelStats answers GET /v2/models/{name}/stats in Triton's shape: what
// the variants a name covers (a variant itself, an architecture's
// variants, a use case's) have served.
type ModelStats struct {
	ModelStats []ModelStat `json:"model_stats"`
}

// ModelStat is one variant's statistics. Times are nanoseconds.
type ModelStat struct {
	Name           string         `json:"name"`
	Version        string         `json:"version"`
	LastInference  int64          `json:"last_inference"` // ms since the epoch; 0: never
	InferenceCount int64          `json:"inference_count"`
	ExecutionCount int64          `json:"execution_count"`
	InferenceStats InferenceStats `json:"inference_stats"`
	BatchStats     []BatchStat    `json:"batch_stats"`
}

// InferenceStats are Triton's per-model durations: success and fail are
// whole requests, queue the wait on the replica, compute_infer the batch
// runs (compute_input and compute_output are part of it in infaas).
type InferenceStats struct {
	Success       StatDuration `json:"success"`
	Fail          StatDuration `json:"fail"`
	Queue         StatDuration `json:"queue"`
	ComputeInput  StatDuration `json:"compute_input"`
	ComputeInfer  StatDuration `json:"compute_infer"`
	ComputeOutput StatDuration `json:"compute_output"`
}

// StatDuration is a count and the total nanoseconds.
type StatDuration struct {
	Count int64 `json:"count"`
	Ns    int64 `json:"ns"`
}

// BatchStat is the requests run in batches of one size.
type BatchStat struct {
	BatchSize    int          `json:"batch_size"`
	ComputeInfer StatDuration `json:"compute_infer"`
}
