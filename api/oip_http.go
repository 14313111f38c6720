package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/infaas/infaas/controller"
)

// headerJSONLength is the binary tensor data extension's header: the length
// of the JSON that starts the body; raw tensors follow it.
const headerJSONLength = "Inference-Header-Content-Length"

// RegisterInference adds the Open Inference Protocol's REST endpoints, other
// than the health probes of RegisterHealth, to mux:
//
//	GET  /v2                                           server metadata
//	GET  /v2/models/{name}[/versions/{version}]        model metadata
//	GET  /v2/models/{name}[/versions/{version}]/ready  model readiness
//	POST /v2/models/{name}[/versions/{version}]/infer  inference
//
// {name} is a variant, an architecture or a use case, "task.dataset" or
// "task%2Fdataset"; it reaches b unescaped and otherwise unchanged.
// Inference bodies over maxBody bytes are refused with 413 (maxBody ≤ 0:
// no limit). Errors are {"error": "..."} with the status of Status.
func RegisterInference(mux *http.ServeMux, b Backend, maxBody int64) {
	RegisterInferenceBudget(mux, b, maxBody, nil)
}

// RegisterInferenceBudget is RegisterInference with the bodies of all
// inference requests together bounded by budget (nil: no bound); a request
// over it is refused with 503 and Retry-After.
func RegisterInferenceBudget(mux *http.ServeMux, b Backend, maxBody int64, budget *BodyBudget) {
	h := &inferenceHTTP{backend: b, maxBody: maxBody, budget: budget}
	mux.HandleFunc("GET /v2", h.serverMetadata)
	mux.HandleFunc("GET /v2/models/{name}", h.modelMetadata)
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}", h.modelMetadata)
	mux.HandleFunc("GET /v2/models/{name}/ready", h.modelReady)
	mux.HandleFunc("GET /v2/models/{name}/stats", h.modelStats)
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}/stats", h.modelStats)
	mux.HandleFunc("GET /v2/models/stats", h.modelStats)
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}/ready", h.modelReady)
	mux.HandleFunc("POST /v2/models/{name}/infer", h.infer)
	mux.HandleFunc("POST /v2/models/{name}/versions/{version}/infer", h.infer)
}

// ServerReadyHandler answers GET /v2/health/ready from b.Ready: 200
// {"ready": true}, or 503 {"ready": false} so that a Kubernetes readiness
// probe sees the difference.
func ServerReadyHandler(b Backend) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ready := b.Ready(r.Context())
		writeJSON(w, readyStatus(ready), map[string]bool{"ready": ready})
	}
}

func readyStatus(ready bool) int {
	if ready {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

type inferenceHTTP struct {
	backend Backend
	maxBody int64
	budget  *BodyBudget
}

type serverMetadataJSON struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

func (h *inferenceHTTP) serverMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, serverMetadataJSON{Name: serverName, Version: serverVersion, Extensions: serverExtensions})
}

type modelMetadataJSON struct {
	Name     string               `json:"name"`
	Versions []string             `json:"versions,omitempty"`
	Platform string               `json:"platform"`
	Inputs   []tensorMetadataJSON `json:"inputs"`
	Outputs  []tensorMetadataJSON `json:"outputs"`
}

type tensorMetadataJSON struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

func tensorsMetadataJSON(ts []TensorMetadata) []tensorMetadataJSON {
	out := make([]tensorMetadataJSON, len(ts))
	for i, t := range ts {
		out[i] = tensorMetadataJSON{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		if out[i].Shape == nil {
			out[i].Shape = []int64{}
		}
	}
	return out
}

func (h *inferenceHTTP) modelMetadata(w http.ResponseWriter, r *http.Request) {
	md, err := modelMetadata(r.Context(), h.backend, r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, modelMetadataJSON{
		Name:     md.Name,
		Versions: md.Versions,
		Platform: md.Platform,
		Inputs:   tensorsMetadataJSON(md.Inputs),
		Outputs:  tensorsMetadataJSON(md.Outputs),
	})
}

// modelReady answers {"name", "ready"}: 200 when ready, 503 when not, as
// Kubernetes probes expect; an unknown model is 404. The version, if any,
// is not consulted: readiness is per model.
func (h *inferenceHTTP) modelReady(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ready, err := h.backend.ModelReady(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, readyStatus(ready), struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	}{name, ready})
}

// modelStats answers Triton's statistics extension: per variant, request
// counts and durations and the batch sizes run; /v2/models/stats covers
// every variant.
func (h *inferenceHTTP) modelStats(w http.ResponseWriter, r *http.Request) {
	sb, ok := h.backend.(StatsBackend)
	if !ok {
		writeError(w, fmt.Errorf("%w: this server keeps no model statistics", controller.ErrUnknownModel))
		return
	}
	if v := r.PathValue("version"); v != "" {
		if _, err := modelMetadata(r.Context(), h.backend, r.PathValue("name"), v); err != nil {
			writeError(w, err)
			return
		}
	}
	st, err := sb.ModelStatistics(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *inferenceHTTP) infer(w http.ResponseWriter, r *http.Request) {
	// The body's buffer backs the request's tensors until the answer is
	// written: it is held from the budget until then.
	held := &hold{b: h.budget}
	defer held.release()
	req, jr, err := h.decode(w, r, held)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := infer(r.Context(), h.backend, req)
	if err != nil {
		writeError(w, err)
		return
	}
	body, tail, err := appendJSONResponse(make([]byte, 0, 512), resp, jr.wantsBinary)
	if err != nil {
		writeError(w, err)
		return
	}
	size := len(body)
	for _, t := range tail {
		size += len(t)
	}
	w.Header().Set("Content-Length", strconv.Itoa(size))
	if len(tail) > 0 {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set(headerJSONLength, strconv.Itoa(len(body)))
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		return // the client went away
	}
	for _, t := range tail {
		if _, err := w.Write(t); err != nil {
			return
		}
	}
}

// decode reads and parses an inference request. Any content type is
// accepted: clients send application/json, text/plain, octet-stream or none.
func (h *inferenceHTTP) decode(w http.ResponseWriter, r *http.Request, held *hold) (*InferRequest, *jsonRequest, error) {
	if h.maxBody > 0 && r.ContentLength > h.maxBody {
		return nil, nil, fmt.Errorf("%w: %d bytes, over the limit of %d", errTooLarge, r.ContentLength, h.maxBody)
	}
	body, err := readBody(w, r, h.maxBody, held)
	if err != nil {
		return nil, nil, err
	}
	headerLen := -1
	if v := r.Header.Get(headerJSONLength); v != "" {
		if headerLen, err = strconv.Atoi(v); err != nil || headerLen < 0 {
			return nil, nil, fmt.Errorf("%w: header %s must be a byte count, got %q", ErrBadRequest, headerJSONLength, v)
		}
	}
	jr, err := decodeJSONRequest(body, headerLen)
	if err != nil {
		return nil, nil, err
	}
	reqs, err := requirementsFrom(jr.params)
	if err != nil {
		return nil, nil, err
	}
	return &InferRequest{
		Model:          r.PathValue("name"),
		Version:        r.PathValue("version"),
		ID:             jr.id,
		Requirements:   reqs,
		Inputs:         jr.inputs,
		Outputs:        jr.outputs,
		Classification: jr.classification,
	}, jr, nil
}

// firstChunk bounds what readBody allocates before any byte arrives: a
// client that announces a large body and then sends it slowly (or never)
// holds at most this much, and the buffer grows only as data comes.
const firstChunk = 1 << 20

// readBody reads the whole body, at most maxBytes (≤ 0: no limit). The
// announced length sizes the first allocation up to firstChunk only.
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64, h *hold) ([]byte, error) {
	body := r.Body
	if maxBytes > 0 {
		body = http.MaxBytesReader(w, r.Body, maxBytes)
	}
	buf, err := readAll(body, min(max(r.ContentLength, 512), firstChunk), maxBytes, h)
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrBodyMemory):
		return nil, err
	case errors.As(err, &mbe):
		return nil, fmt.Errorf("%w: over the limit of %d bytes; send fewer inputs per request, or the tensors in binary (the binary tensor data extension)", errTooLarge, mbe.Limit)
	case err != nil:
		return nil, fmt.Errorf("%w: reading the body: %v", ErrBadRequest, err)
	case len(buf) == 0:
		return nil, fmt.Errorf("%w: the body is empty; send an inference request", ErrBadRequest)
	}
	return buf, nil
}
