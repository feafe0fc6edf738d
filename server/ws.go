package server

import (
	"errors"
	"net/http"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/transport/ws"
)

// handleWS is GET /v1/ws.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.refuseOrigin(w, r)
		return
	}
	since, resume, err := parseSince(r.URL.Query().Get("since"))
	if err != nil {
		writeError(w, err)
		return
	}
	claims := userClaims(r)
	// Subscribe before the upgrade completes: once the client sees the
	// connection open, nothing published afterwards can miss it.
	release, err := s.hub.Reserve(r.Context(), claims.Subject)
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("ws subscribe failed", "user", claims.Subject, "err", err)
			err = errUnavailable
		}
		writeError(w, err)
		return
	}
	defer release()
	// The origin was checked above against HERALD_ALLOWED_ORIGINS.
	c, err := ws.Accept(w, r, s.cfg.WSReadLimit)
	if err != nil {
		return // Accept has answered the request
	}
	sess, err := s.hub.Attach(r.Context(), hub.AttachRequest{
		User: claims.Subject, SessionID: claims.SessionID, Transport: "ws", Expires: claims.ExpiresAt,
		Since: since, Resume: resume, Writer: c.Writer(),
	})
	if err != nil {
		closing := errors.Is(err, hub.ErrClosing)
		if !closing {
			s.log.Warn("ws attach failed", "user", claims.Subject, "err", err)
		}
		c.Refuse(closing)
		return
	}
	// The connection is hijacked and outlives the handler: its reader runs
	// on a fresh goroutine with a shallow stack, and the handler's deep one
	// (net/http, router, middleware) is released.
	go s.readAcks(c, sess)
}

// readAcks takes the session's acks until its connection ends, then ends
// the session.
func (s *Server) readAcks(c *ws.Conn, sess *hub.Session) {
	defer s.hub.Detach(sess)
	user := sess.User()
	c.ReadAcks(maxAckIDs, func(ids []string) {
		// A socket cannot be answered 429: acks over the user's limit are
		// dropped (and counted); the push they would have cancelled goes.
		if ok, _ := s.limits.allow(s.limits.acks, "ack", "ws", user, len(ids)); ok {
			s.hub.Ack(user, ids)
		}
	}, s.hub.MalformedAck)
}
