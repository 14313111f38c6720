package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// InferInput is one tensor of an Open Inference Protocol request, sent as JSON.
type InferInput struct {
	Name     string    `json:"name"`
	Shape    []int64   `json:"shape"`
	Datatype string    `json:"datatype"`
	Data     []float32 `json:"data"`
}

// InferOutput is one tensor of the answer.
type InferOutput struct {
	Name     string    `json:"name"`
	Shape    []int64   `json:"shape"`
	Datatype string    `json:"datatype"`
	Data     []float64 `json:"data"`
}

// InferResult is the answer to an inference request.
type InferResult struct {
	ModelName  string         `json:"model_name"`
	ID         string         `json:"id"`
	Parameters map[string]any `json:"parameters"`
	Outputs    []InferOutput  `json:"outputs"`
}

// ModelInfo is GET /v2/models/{name}.
type ModelInfo struct {
	Name     string           `json:"name"`
	Platform string           `json:"platform"`
	Versions []string         `json:"versions"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// TensorMetadata is one input or output as model metadata describes it
// (−1 for a dynamic dimension).
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// Model returns a model's metadata (variant, architecture or use case
// written task.dataset).
func (c *Client) Model(ctx context.Context, name string) (ModelInfo, error) {
	var m ModelInfo
	_, err := c.do(ctx, http.MethodGet, "/v2/models/"+url.PathEscape(name), "", nil, &m)
	return m, err
}

// Requirements are a query's requirements; zero values state none.
type Requirements struct {
	Latency     time.Duration // latency target
	MinAccuracy float64       // percent
	MaxCost     float64       // USD per 1,000 queries
	Strict      bool          // refuse rather than serve best effort
	Explain     bool          // ask for the decision's explanation
}

// Params writes r as the request parameters the server reads: latency_ms,
// min_accuracy, max_cost, strict, explain; a requirement not stated is left
// out.
func (r Requirements) Params() map[string]any {
	params := map[string]any{}
	if r.Latency > 0 {
		params["latency_ms"] = float64(r.Latency) / float64(time.Millisecond)
	}
	if r.MinAccuracy > 0 {
		params["min_accuracy"] = r.MinAccuracy
	}
	if r.MaxCost > 0 {
		params["max_cost"] = r.MaxCost
	}
	if r.Strict {
		params["strict"] = true
	}
	if r.Explain {
		params["explain"] = true
	}
	return params
}

// InferBody is the JSON body of an inference request over the Open
// Inference Protocol's HTTP/JSON binding, as Infer sends it.
func InferBody(ins []InferInput, params map[string]any) ([]byte, error) {
	body := map[string]any{"inputs": ins}
	if len(params) > 0 {
		body["parameters"] = params
	}
	return json.Marshal(body)
}

// Infer sends one inference request over the Open Inference Protocol's
// HTTP/JSON binding; params carry the requirements (latency_ms,
// min_accuracy, max_cost, strict, explain; see Requirements.Params).
func (c *Client) Infer(ctx context.Context, model string, in InferInput, params map[string]any) (InferResult, error) {
	return c.InferAll(ctx, model, []InferInput{in}, params)
}

// InferAll is Infer with every input of a model that takes several.
func (c *Client) InferAll(ctx context.Context, model string, ins []InferInput, params map[string]any) (InferResult, error) {
	b, err := InferBody(ins, params)
	if err != nil {
		return InferResult{}, err
	}
	var r InferResult
	_, err = c.do(ctx, http.MethodPost, "/v2/models/"+url.PathEscape(model)+"/infer", "application/json", bytes.NewReader(b), &r)
	return r, err
}

// Decisions returns the server's recent routing decisions, newest first.
func (c *Client) Decisions(ctx context.Context) ([]map[string]any, error) {
	var out []map[string]any
	_, err := c.do(ctx, http.MethodGet, "/v1/decisions", "", nil, &out)
	return out, err
}
