package server

import (
	"net/http"

	"github.com/gorilla/mux"
)

// webRoutes serves the browser side: the demo page and, later, the client
// library and service worker.
func (s *Server) webRoutes(r *mux.Router) {
	r.HandleFunc("/", s.handleIndex).Methods(http.MethodGet)
}

func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("Herald notification hub\n\n" +
		"  GET  /v1/ws, /v1/sse       live notifications (user token)\n" +
		"  GET  /v1/notifications     inbox (user token)\n" +
		"  POST /v1/ack               acks (user token)\n" +
		"  POST /v1/notifications     send (API key)\n" +
		"  GET  /healthz /readyz /metrics\n"))
}
