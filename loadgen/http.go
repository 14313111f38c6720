package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/infaas/infaas/client"
)

// HTTPSender sends requests over the Open Inference Protocol's HTTP/JSON
// binding, POST /v2/models/{name}/infer, on keep-alive connections.
type HTTPSender struct {
	base string
	http *http.Client
	meta *client.Client
	seed uint64
}

// headerJSONLength is the binary tensor data extension's header: the length
// of the JSON that starts an answer whose raw tensors follow it.
const headerJSONLength = "Inference-Header-Content-Length"

var _ Sender = (*HTTPSender)(nil)

// NewHTTPSender returns a sender to server (e.g. "http://127.0.0.1:8000")
// whose connection pool holds up to conns idle keep-alive connections, as
// many as requests may be in flight. Inputs are made up from seed.
func NewHTTPSender(server string, conns int, seed uint64) *HTTPSender {
	meta := client.New(server)
	conns = max(conns, 1)
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &HTTPSender{
		base: meta.Base(),
		http: &http.Client{Transport: tr},
		meta: meta,
		seed: seed,
	}
}

// Close closes the idle connections.
func (s *HTTPSender) Close() { s.http.CloseIdleConnections() }

type httpBody struct {
	url  string
	json []byte
}

// Prepare implements Sender: it reads the model's inputs from GET
// /v2/models/{name} and encodes one JSON body of synthetic tensors.
func (s *HTTPSender) Prepare(ctx context.Context, set RequirementSet) (*Prepared, error) {
	info, err := s.meta.Model(ctx, set.Model)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", set.Model, err)
	}
	syn, err := makeInputs(set.Model, info.Inputs, info.Outputs, set, rand.New(rand.NewPCG(s.seed, 0)))
	if err != nil {
		return nil, err
	}
	ins := make([]client.InferInput, len(syn))
	for i := range syn {
		if ins[i], err = syn[i].jsonInput(); err != nil {
			return nil, fmt.Errorf("model %s: %w", set.Model, err)
		}
	}
	body, err := client.InferBody(ins, params(set))
	if err != nil {
		return nil, fmt.Errorf("model %s: encode the request: %w", set.Model, err)
	}
	return &Prepared{Set: set, Body: httpBody{
		url:  s.base + "/v2/models/" + url.PathEscape(set.Model) + "/infer",
		json: body,
	}}, nil
}

// Send implements Sender.
func (s *HTTPSender) Send(ctx context.Context, p *Prepared) Outcome {
	b, ok := p.Body.(httpBody)
	if !ok {
		return Outcome{Result: Failed, Status: "error", Err: errors.New("the request was not prepared by this HTTP sender")}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(b.json))
	if err != nil {
		return Outcome{Result: Failed, Status: "error", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return transportFailure(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return transportFailure(ctx, err)
	}
	o := Outcome{Status: strconv.Itoa(resp.StatusCode)}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		o.Result = Answered
		o.Variant, o.Served = answerParams(resp.Header, data, p.Set.Model)
		return o
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable, code == http.StatusUnprocessableEntity:
		o.Result = Refused
	default:
		o.Result = Failed
	}
	o.Err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, errorMessage(data))
	return o
}

// answerParams reads the serving variant from an answer — the "variant"
// parameter, else a model_name other than the one asked for — and the
// server's timing parameters.
func answerParams(h http.Header, data []byte, asked string) (string, Timing) {
	if v := h.Get(headerJSONLength); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= len(data) {
			data = data[:n]
		}
	}
	var r struct {
		ModelName  string `json:"model_name"`
		Parameters struct {
			Variant   any      `json:"variant"`
			QueueMs   *float64 `json:"queue_ms"`
			ComputeMs *float64 `json:"compute_ms"`
			BatchSize int      `json:"batch_size"`
			Replica   any      `json:"replica"`
			Worker    any      `json:"worker"`
		} `json:"parameters"`
	}
	if json.Unmarshal(data, &r) != nil {
		return "", Timing{}
	}
	var t Timing
	if q, c := r.Parameters.QueueMs, r.Parameters.ComputeMs; q != nil && c != nil {
		t = Timing{Known: true, QueueMs: *q, ComputeMs: *c, BatchSize: r.Parameters.BatchSize}
		t.Replica, _ = r.Parameters.Replica.(string)
		t.Worker, _ = r.Parameters.Worker.(string)
	}
	if v, ok := r.Parameters.Variant.(string); ok && v != "" {
		return v, t
	}
	if r.ModelName != asked {
		return r.ModelName, t
	}
	return "", t
}

// errorMessage is the {"error": "..."} of an answer, or its start.
func errorMessage(data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// transportFailure classifies a request that got no answer.
func transportFailure(ctx context.Context, err error) Outcome {
	status := "error"
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		status = "timeout"
	case ctx.Err() != nil:
		status = "canceled"
	}
	return Outcome{Result: Failed, Status: status, Err: err}
}
