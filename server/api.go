package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/notification"
)

// Limits on API input; every field is bounded so bad input gets a clear 4xx.
const (
	maxAPIBody       = 1 << 20
	maxRecipients    = 100_000
	maxTitleLen      = 1024
	maxBodyLen       = 8192
	maxURLLen        = notification.MaxURLLen
	maxTagLen        = 256
	maxDataLen       = 4096
	maxIdemKeyLen    = 256
	idempotencyTTL   = 24 * time.Hour
	idempotencyInUse = time.Minute // a request that died mid-way blocks retries this long
)

type sendRequest struct {
	ID      string          `json:"id"`
	To      []string        `json:"to"`
	Type    string          `json:"type"`
	Title   string          `json:"title"`
	Body    string          `json:"body"`
	URL     string          `json:"url"`
	Icon    string          `json:"icon"`
	Tag     string          `json:"tag"`
	Urgency string          `json:"urgency"`
	TTL     int             `json:"ttl"`
	Data    json.RawMessage `json:"data"`
}

type sentNotification struct {
	ID     string `json:"id"`
	User   string `json:"user"`
	Cursor string `json:"cursor,omitempty"`
}

type sendResponse struct {
	Notifications []sentNotification `json:"notifications"`
}

func (req *sendRequest) validate() error {
	bad := func(field, msg string) error {
		return invalidField(field, msg)
	}
	if len(req.To) == 0 {
		return bad("to", "at least one recipient is required")
	}
	if len(req.To) > maxRecipients {
		return bad("to", "too many recipients")
	}
	for _, u := range req.To {
		if err := validUserID(u); err != nil {
			return bad("to", err.Error())
		}
	}
	if req.Title == "" && req.Body == "" {
		return bad("title", "title or body is required")
	}
	checks := []struct {
		field string
		value string
		max   int
	}{
		{"id", req.ID, maxIdemKeyLen}, {"type", req.Type, maxTagLen}, {"title", req.Title, maxTitleLen},
		{"body", req.Body, maxBodyLen}, {"url", req.URL, maxURLLen}, {"icon", req.Icon, maxURLLen},
		{"tag", req.Tag, maxTagLen},
	}
	for _, c := range checks {
		if len(c.value) > c.max {
			return bad(c.field, "too long")
		}
		if !utf8.ValidString(c.value) {
			return bad(c.field, "not valid UTF-8")
		}
	}
	if err := notification.ValidURL(req.URL); err != nil {
		return bad("url", err.Error())
	}
	if err := notification.ValidURL(req.Icon); err != nil {
		return bad("icon", err.Error())
	}
	switch req.Urgency {
	case "", notification.UrgencyHigh, notification.UrgencyNormal, notification.UrgencyLow:
	default:
		return bad("urgency", "must be high, normal or low")
	}
	if req.TTL < 0 || req.TTL > 28*24*3600 {
		return bad("ttl", "must be between 0 and 2419200 seconds")
	}
	if len(req.Data) > maxDataLen {
		return bad("data", "too large")
	}
	if len(req.Data) > 0 && (req.Data[0] != '{' || !json.Valid(req.Data)) {
		return bad("data", "must be a JSON object")
	}
	return nil
}

// validUserID is the user id check every path shares (API, webhooks).
func validUserID(u string) error { return notification.ValidUserID(u) }

// handleSend is POST /v1/notifications.
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) error {
	var req sendRequest
	if err := decodeJSON(w, r, maxAPIBody, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	// The answer is the result the idempotency key remembers, sealed
	// with the request's fingerprint so that a different request under
	// the same key is refused.
	var body []byte
	var fp string
	opts := delivery.PublishOptions{Result: func(events []*notification.Event) ([]byte, error) {
		body, _ = json.Marshal(sent(events))
		if fp == "" {
			return body, nil
		}
		return sealResult(fp, body), nil
	}}
	if req.ID != "" {
		fp = req.fingerprint()
		opts.IdempotencyKey, opts.Keys = "notifications:"+req.ID, s.idem
		opts.InUse, opts.ResultTTL = idempotencyInUse, idempotencyTTL
	}
	res, err := s.delivery.Send(r.Context(), req.notification(), req.To, opts)
	switch {
	case errors.Is(err, delivery.ErrInProgress):
		return codeInProgress.with("a request with this id is still being processed")
	case err != nil:
		s.log.Warn("publish failed", "err", err, "recipients", len(req.To))
		return errUnavailable
	case res.Suppressed:
		priorFP, prior := openResult(res.Record)
		if priorFP != "" && priorFP != fp {
			return codeKeyReused.with("id: this idempotency key was used with a different request")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(prior)
		return nil
	}
	if res.Unrecorded != nil {
		s.log.Warn("idempotency complete failed", "err", res.Unrecorded)
		s.unrecorded.WithLabelValues("api").Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(body)
	return nil
}

// notification is the notification req asks for, sent to each of its
// recipients.
func (req *sendRequest) notification() *notification.Notification {
	return &notification.Notification{
		Type: req.Type, Title: req.Title, Body: req.Body, Icon: req.Icon, URL: req.URL, Tag: req.Tag,
		Urgency: req.Urgency, TTL: req.TTL, Data: req.Data,
	}
}

// sent is the answer to a send that published events.
func sent(events []*notification.Event) *sendResponse {
	resp := &sendResponse{Notifications: make([]sentNotification, len(events))}
	for i, ev := range events {
		resp.Notifications[i] = sentNotification{ID: ev.ID, User: ev.User, Cursor: ev.Cursor.String()}
	}
	return resp
}

// handlePresence is GET /v1/users/{id}/presence.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) error {
	user := mux.Vars(r)["id"]
	if err := validUserID(user); err != nil {
		return invalidField("id", err.Error())
	}
	n, err := s.hub.Presence(r.Context(), user)
	if err != nil {
		return errUnavailable
	}
	writeJSON(w, http.StatusOK, map[string]any{"online": n > 0, "sessions": n})
	return nil
}

// parseSince reads a resume cursor; an empty string means none.
func parseSince(raw string) (notification.Cursor, bool, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return notification.Cursor{}, false, nil
	}
	c, err := notification.ParseCursor(raw)
	if err != nil {
		return c, false, codeInvalidCursor.with("since: malformed cursor")
	}
	return c, true, nil
}
