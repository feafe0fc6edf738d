package server

import (
	"errors"
	"net/http"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/transport/sse"
)

// handleSSE is GET /v1/sse. Resume with Last-Event-ID or ?since=.
func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.refuseOrigin(w, r)
		return
	}
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("since")
	}
	since, resume, err := parseSince(raw)
	if err != nil {
		writeError(w, err)
		return
	}
	claims := userClaims(r)
	req := hub.AttachRequest{User: claims.Subject, SessionID: claims.SessionID,
		Transport: "sse", Since: since, Resume: resume, Expires: claims.ExpiresAt}
	// Subscribe before the response head goes out: once the client sees the
	// stream open, nothing published afterwards can miss it.
	release, err := s.hub.Reserve(r.Context(), req.User)
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("sse subscribe failed", "user", req.User, "err", err)
			err = errUnavailable
		}
		writeError(w, err)
		return
	}
	defer release()
	stream, err := sse.Open(w, r, s.cfg.WriteTimeout)
	if err != nil {
		return
	}
	req.Writer = stream.Writer()
	sess, err := s.hub.Attach(r.Context(), req)
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("sse attach failed", "user", req.User, "err", err)
		}
		stream.Abort()
		return
	}
	stream.Serve(r.Context(), s.peers, func() { s.hub.Detach(sess) })
}
