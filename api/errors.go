package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/infaas/infaas/metadata"
	"github.com/infaas/infaas/registrar"
)

// ErrBadRequest marks malformed requests detected by the API itself.
var ErrBadRequest = errors.New("bad request")

// errTooLarge marks a body over the configured limit.
var errTooLarge = errors.New("request body too large")

// Status maps an error to its HTTP status code.
func Status(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &mbe), errors.Is(err, errTooLarge), errors.Is(err, registrar.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadRequest), errors.Is(err, registrar.ErrInvalid), errors.Is(err, registrar.ErrNotONNX),
		errors.Is(err, metadata.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, registrar.ErrNotFound), errors.Is(err, metadata.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, registrar.ErrExists), errors.Is(err, metadata.ErrExists), errors.Is(err, metadata.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, registrar.ErrRejected), errors.Is(err, registrar.ErrContract),
		errors.Is(err, registrar.ErrValidation), errors.Is(err, registrar.ErrUnreachable):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// writeError answers {"error": "..."} (the Open Inference Protocol's error shape).
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, Status(err), map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
