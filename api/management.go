package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/registrar"
)

// Registrar is what the management API needs of the registrar.
type Registrar interface {
	Submit(ctx context.Context, req registrar.Request) (registrar.Status, error)
	Status(ctx context.Context, name string) (registrar.Status, error)
	Jobs() []registrar.Status
	Delete(ctx context.Context, name string) error
}

// Management serves /v1.
type Management struct {
	Store     metadata.Store
	Registrar Registrar
	// MaxUploadBytes bounds a registration's whole body.
	MaxUploadBytes int64
	// Bodies, when set, bounds the memory uploads being read hold at once,
	// with the inference bodies it is shared with (see BodyBudget).
	Bodies *BodyBudget
	Log    *slog.Logger
	// Decisions and Workers, when set, serve /v1/decisions and /v1/workers.
	Decisions func() any
	Workers   func() any
	// Events, when set, serves /v1/events: the actions infaas took on its
	// own, as a page or (follow=true) a stream.
	Events *events.Log
}

// Register adds the management routes to mux.
func (m *Management) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/models", m.register)
	mux.HandleFunc("GET /v1/models", m.list)
	mux.HandleFunc("GET /v1/models/{name}", m.architecture)
	mux.HandleFunc("DELETE /v1/models/{name}", m.delete)
	mux.HandleFunc("GET /v1/models/{name}/variants", m.variants)
	mux.HandleFunc("GET /v1/variants/{name}", m.variant)
	mux.HandleFunc("GET /v1/usecases", m.useCases)
	mux.HandleFunc("GET /v1/registrations", m.registrations)
	mux.HandleFunc("GET /v1/registrations/{name}", m.registration)
	if m.Decisions != nil {
		mux.HandleFunc("GET /v1/decisions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, m.Decisions()) })
	}
	if m.Workers != nil {
		mux.HandleFunc("GET /v1/workers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, m.Workers()) })
	}
	if m.Events != nil {
		mux.HandleFunc("GET /v1/events", m.listEvents)
	}
}

// Listing is GET /v1/models's answer.
type Listing struct {
	UseCases      []catalog.UseCase      `json:"use_cases"`
	Architectures []catalog.Architecture `json:"architectures"`
}

func (m *Management) list(w http.ResponseWriter, r *http.Request) {
	ucs, err := m.Store.UseCases(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	archs, err := m.Store.Architectures(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Listing{UseCases: ucs, Architectures: archs})
}

func (m *Management) architecture(w http.ResponseWriter, r *http.Request) {
	a, err := m.Store.Architecture(r.Context(), r.PathValue("name"))
	if err == nil && a.State != catalog.StateReady {
		err = fmt.Errorf("architecture %q is still being registered: %w", a.Name, metadata.ErrNotFound)
	}
	if err != nil {
		writeError(w, fmt.Errorf("architecture %q: %w", r.PathValue("name"), err))
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (m *Management) delete(w http.ResponseWriter, r *http.Request) {
	// An architecture belongs to the tenant that registered it.
	if p, ok := PrincipalFrom(r.Context()); ok {
		a, err := m.Store.Architecture(r.Context(), r.PathValue("name"))
		if err == nil && a.Owner != "" && a.Owner != p.Tenant {
			writeError(w, fmt.Errorf("%w: architecture %q belongs to tenant %s; tenant %s may not delete it", ErrForbidden, a.Name, a.Owner, p.Tenant))
			return
		}
	}
	if err := m.Registrar.Delete(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, fmt.Errorf("delete architecture %q: %w", r.PathValue("name"), err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (m *Management) variants(w http.ResponseWriter, r *http.Request) {
	vs, err := m.Store.Variants(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, fmt.Errorf("variants of %q: %w", r.PathValue("name"), err))
		return
	}
	writeJSON(w, http.StatusOK, vs)
}

func (m *Management) variant(w http.ResponseWriter, r *http.Request) {
	v, err := m.Store.Variant(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, fmt.Errorf("variant %q: %w", r.PathValue("name"), err))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (m *Management) useCases(w http.ResponseWriter, r *http.Request) {
	ucs, err := m.Store.UseCases(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ucs)
}

func (m *Management) registrations(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, m.Registrar.Jobs())
}

func (m *Management) registration(w http.ResponseWriter, r *http.Request) {
	st, err := m.Registrar.Status(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// register takes multipart/form-data: fields name, task, dataset, and
// optionally accuracy, input_scale, model_url, config, reprofile; files model,
// validation_inputs, validation_labels.
func (m *Management) register(w http.ResponseWriter, r *http.Request) {
	// The upload's parts are held from the budget until Submit has taken
	// them (the registration job then holds the model; the registrar's
	// queue bounds how many).
	held := &hold{b: m.Bodies}
	defer held.release()
	req, err := m.parseRegistration(w, r, held)
	if err != nil {
		writeError(w, err)
		return
	}
	if p, ok := PrincipalFrom(r.Context()); ok {
		req.Owner = p.Tenant
	}
	st, err := m.Registrar.Submit(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	code := http.StatusAccepted
	if st.State == registrar.StateReady {
		code = http.StatusOK
	}
	w.Header().Set("Location", "/v1/registrations/"+req.Name)
	writeJSON(w, code, st)
}

func (m *Management) parseRegistration(w http.ResponseWriter, r *http.Request, held *hold) (registrar.Request, error) {
	var req registrar.Request
	if r.ContentLength > m.MaxUploadBytes {
		return req, fmt.Errorf("%w: the upload is %d bytes; this server accepts at most %d (start it with a larger --max-upload)",
			errTooLarge, r.ContentLength, m.MaxUploadBytes)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return req, fmt.Errorf("%w: send the registration as multipart/form-data (fields name, task, dataset; file model)", ErrBadRequest)
	}
	r.Body = http.MaxBytesReader(w, r.Body, m.MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return req, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return req, uploadError(err, m.MaxUploadBytes)
		}
		data, err := readAll(part, 64<<10, m.MaxUploadBytes, held)
		if errors.Is(err, ErrBodyMemory) {
			return req, err
		}
		if err != nil {
			return req, uploadError(err, m.MaxUploadBytes)
		}
		switch part.FormName() {
		case "name":
			req.Name = strings.TrimSpace(string(data))
		case "task":
			req.Task = strings.TrimSpace(string(data))
		case "dataset":
			req.Dataset = strings.TrimSpace(string(data))
		case "model_url":
			req.ModelURL = strings.TrimSpace(string(data))
		case "accuracy":
			a, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
			if err != nil {
				return req, fmt.Errorf("%w: accuracy %q is not a number", ErrBadRequest, data)
			}
			req.DeclaredAccuracy = &a
		case "input_scale":
			s, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
			if err != nil {
				return req, fmt.Errorf("%w: input_scale %q is not a number", ErrBadRequest, data)
			}
			req.InputScale = s
		case "reprofile":
			b, err := strconv.ParseBool(strings.TrimSpace(string(data)))
			if err != nil {
				return req, fmt.Errorf("%w: reprofile %q is not true or false", ErrBadRequest, data)
			}
			req.Reprofile = b
		case "config":
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req.Overrides); err != nil {
				return req, fmt.Errorf("%w: config is not a valid JSON object with batch, shapes, profile_shapes and labels: %v", ErrBadRequest, err)
			}
		case "model":
			req.Model = data
		case "validation_inputs":
			req.ValidationInputs = data
		case "validation_labels":
			req.ValidationLabels = data
		default:
			return req, fmt.Errorf("%w: unknown field %q (want name, task, dataset, model, model_url, accuracy, input_scale, config, reprofile, validation_inputs, validation_labels)",
				ErrBadRequest, part.FormName())
		}
	}
	return req, nil
}

func uploadError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: the upload exceeds this server's limit of %d bytes (start it with a larger --max-upload)", errTooLarge, limit)
	}
	return fmt.Errorf("%w: reading the upload: %v", ErrBadRequest, err)
}
