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
func (s *Server) handleGetPreferences(w http.ResponseWriter, r *http.Request) {
	p, err := s.backends.prefs.Preferences(r.Context(), userClaims(r).Subject)
	if err != nil {
		s.log.Warn("preferences read failed", "err", err)
		writeError(w, errUnavailable)
		return
	}
	if p.Muted == nil {
		p.Muted = []string{}
	}
	writeJSON(w, http.StatusOK, p)
}

// handlePutPreferences is PUT /v1/preferences: replaces the user's settings.
func (s *Server) handlePutPreferences(w http.ResponseWriter, r *http.Request) {
	var p ingest.Preferences
	if err := decodeJSON(w, r, maxPreferencesBody, &p); err != nil {
		writeError(w, err)
		return
	}
	if err := p.Validate(); err != nil {
		writeError(w, codeInvalidField.with(err.Error()))
		return
	}
	if err := s.backends.prefs.SetPreferences(r.Context(), userClaims(r).Subject, &p); err != nil {
		s.log.Warn("preferences write failed", "err", err)
		writeError(w, errUnavailable)
		return
	}
	if p.Muted == nil {
		p.Muted = []string{}
	}
	writeJSON(w, http.StatusOK, &p)
}

// handleSetMembers is PUT /v1/conversations/{id}/members: the members of a
// conversation whose provider's events do not name recipients.
func (s *Server) handleSetMembers(w http.ResponseWriter, r *http.Request) {
	conv := mux.Vars(r)["id"]
	if conv == "" || len(conv) > 256 {
		writeError(w, invalidField("id", "conversation ids must be 1-256 bytes"))
		return
	}
	var req struct {
		Members []string `json:"members"`
	}
	if err := decodeJSON(w, r, maxMembersBody, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Members == nil {
		writeError(w, invalidField("members", "required (an empty list clears)"))
		return
	}
	if len(req.Members) > maxMembers {
		writeError(w, invalidField("members", "too many"))
		return
	}
	for _, u := range req.Members {
		if err := validUserID(u); err != nil {
			writeError(w, invalidField("members", err.Error()))
			return
		}
	}
	m := &notification.Membership{Conversation: conv, Set: req.Members}
	if len(req.Members) == 0 {
		m = &notification.Membership{Conversation: conv, Deleted: true}
	}
	if err := s.backends.members.ApplyMembership(r.Context(), m); err != nil {
		s.log.Warn("members write failed", "err", err)
		writeError(w, errUnavailable)
		return
	}
	s.writeMembers(w, r, conv)
}

// handleGetMembers is GET /v1/conversations/{id}/members.
func (s *Server) handleGetMembers(w http.ResponseWriter, r *http.Request) {
	s.writeMembers(w, r, mux.Vars(r)["id"])
}

func (s *Server) writeMembers(w http.ResponseWriter, r *http.Request, conv string) {
	list, err := s.backends.members.Members(r.Context(), conv)
	if err != nil {
		writeError(w, errUnavailable)
		return
	}
	if list == nil {
		list = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation": conv, "members": list})
}
