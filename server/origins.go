package server

import (
	"log/slog"
	"net/http"
	"time"
)

// A browser on an origin missing from HERALD_ALLOWED_ORIGINS is refused
// the live transports. A WebSocket cannot read why it failed, so the
// refusal carries CORS headers: a page can fetch /v1/sse without a token
// and read the 403 origin_not_allowed (the origin check comes before
// authentication). The operator sees the refused origin in the log, once
// a minute per origin, not once per reconnect attempt.

// refusedLogEvery is how often one refused origin is logged.
const refusedLogEvery = time.Minute

// errOriginNotAllowed is the refusal of a browser origin.
var errOriginNotAllowed = codeOriginNotAllowed.with(
	"origin not allowed by HERALD_ALLOWED_ORIGINS")

// requireOrigin refuses browser requests from origins not allowed to open
// the live transports, before authentication.
func (s *Server) requireOrigin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			s.refuseOrigin(w, r)
			return
		}
		next(w, r)
	}
}

// refuseOrigin answers 403 origin_not_allowed, readable by the refused
// page (CORS for any origin, no credentials: the answer tells nothing but
// the refusal), and logs the origin.
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if len(origin) > 256 {
		origin = origin[:256]
	}
	s.refusedOrigins.Log(s.log, slog.LevelWarn, origin, "browser origin refused: add it to HERALD_ALLOWED_ORIGINS if it is yours",
		"origin", origin, "path", r.URL.Path)
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Del("Access-Control-Allow-Credentials")
	writeError(w, errOriginNotAllowed)
}
