package server

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/notification"
)

const (
	maxPreferencesBody = 64 << 10
	maxMembersBody     = 1 << 20
	maxMembers         = 10_000
)

// handleGetPreferences is GET /v1/preferences: the token's user's settings.
func (s *Server) handleGetPreferences(w http.ResponseWriter, r *http.Request) error {
	p, err := s.backends.prefs.Preferences(r.Context(), userClaims(r).Subject)
	if err != nil {
		s.log.Warn("preferences read failed", "err", err)
		return errUnavailable
	}
	if p.Muted == nil {
		p.Muted = []string{}
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// handlePutPreferences is PUT /v1/preferences: replaces the user's settings.
func (s *Server) handlePutPreferences(w http.ResponseWriter, r *http.Request) error {
	var p ingest.Preferences
	if err := decodeJSON(w, r, maxPreferencesBody, &p); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return codeInvalidField.with(err.Error())
	}
	if err := s.backends.prefs.SetPreferences(r.Context(), userClaims(r).Subject, &p); err != nil {
		s.log.Warn("preferences write failed", "err", err)
		return errUnavailable
	}
	if p.Muted == nil {
		p.Muted = []string{}
	}
	writeJSON(w, http.StatusOK, &p)
	return nil
}

// handleSetMembers is PUT /v1/conversations/{id}/members: the members of a
// conversation whose provider's events do not name recipients.
func (s *Server) handleSetMembers(w http.ResponseWriter, r *http.Request) error {
	conv := mux.Vars(r)["id"]
	if conv == "" || len(conv) > 256 {
		return invalidField("id", "conversation ids must be 1-256 bytes")
	}
	var req struct {
		Members []string `json:"members"`
	}
	if err := decodeJSON(w, r, maxMembersBody, &req); err != nil {
		return err
	}
	if req.Members == nil {
		return invalidField("members", "required (an empty list clears)")
	}
	if len(req.Members) > maxMembers {
		return invalidField("members", "too many")
	}
	for _, u := range req.Members {
		if err := validUserID(u); err != nil {
			return invalidField("members", err.Error())
		}
	}
	m := &notification.Membership{Conversation: conv, Set: req.Members}
	if len(req.Members) == 0 {
		m = &notification.Membership{Conversation: conv, Deleted: true}
	}
	if err := s.backends.members.ApplyMembership(r.Context(), m); err != nil {
		s.log.Warn("members write failed", "err", err)
		return errUnavailable
	}
	return s.writeMembers(w, r, conv)
}

// handleGetMembers is GET /v1/conversations/{id}/members.
func (s *Server) handleGetMembers(w http.ResponseWriter, r *http.Request) error {
	return s.writeMembers(w, r, mux.Vars(r)["id"])
}

func (s *Server) writeMembers(w http.ResponseWriter, r *http.Request, conv string) error {
	list, err := s.backends.members.Members(r.Context(), conv)
	if err != nil {
		return errUnavailable
	}
	if list == nil {
		list = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation": conv, "members": list})
	return nil
}
