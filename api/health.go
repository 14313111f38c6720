package api

import "net/http"

// RegisterHealth adds the Open Inference Protocol's liveness and readiness
// endpoints: live while the process answers, ready once b can take
// queries (503 before).
func RegisterHealth(mux *http.ServeMux, b Backend) {
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", ServerReadyHandler(b))
}
