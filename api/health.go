package api

import "net/http"

// RegisterHealth adds the Open Inference Protocol's liveness and readiness
// endpoints.
func RegisterHealth(mux *http.ServeMux) {
	ok := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	}
	mux.HandleFunc("GET /v2/health/live", ok)
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
}
