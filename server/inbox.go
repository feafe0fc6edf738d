package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

const (
	defaultInboxLimit = 50
	maxInboxLimit     = 500
	maxAckIDs         = 1000
)

type inboxResponse struct {
	Notifications []json.RawMessage `json:"notifications"`
	Cursor        string            `json:"cursor"`
	Reset         bool              `json:"reset,omitempty"`
}

// handleInbox is GET /v1/notifications: the user's recent notifications,
// oldest first; with since, the ones after that cursor. A cursor that can no
// longer be resumed from answers reset=true with the newest notifications.
func (s *Server) handleInbox(w http.ResponseWriter, r *http.Request) error {
	user := userClaims(r).Subject
	q := r.URL.Query()
	since, _, err := parseSince(q.Get("since"))
	if err != nil {
		return err
	}
	limit := defaultInboxLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxInboxLimit {
			return invalidField("limit", "must be 1-500")
		}
		limit = n
	}
	unreadOnly := false
	switch q.Get("unread") {
	case "", "false":
	case "true":
		unreadOnly = true
	default:
		return invalidField("unread", "must be true or false")
	}
	events, head, err := s.broker.History(r.Context(), user, since, limit)
	reset := false
	if errors.Is(err, broker.ErrReset) {
		reset = true
		events, head, err = s.broker.History(r.Context(), user, notification.Cursor{}, limit)
	}
	if err != nil {
		s.log.Warn("inbox read failed", "err", err)
		return errUnavailable
	}
	// The read state of the page's notifications may have been set by any
	// later mark: fold the whole retained history.
	rs, err := s.readState(r.Context(), user)
	if err != nil {
		return err
	}
	var unread map[string]bool
	if unreadOnly {
		unread = make(map[string]bool)
		for _, id := range rs.UnreadIDs() {
			unread[id] = true
		}
	}
	resp := inboxResponse{Notifications: make([]json.RawMessage, 0, len(events)), Reset: reset}
	for _, ev := range events {
		if ev.Kind != notification.KindNotification || (unreadOnly && !unread[ev.ID]) {
			continue
		}
		resp.Notifications = append(resp.Notifications, withMarks(ev.JSON(), rs.Marks(ev.ID)))
	}
	// The cursor to continue from: the last event returned, else the head
	// (nothing newer), else what the client gave.
	switch {
	case len(events) > 0:
		resp.Cursor = events[len(events)-1].Cursor.String()
	case !head.IsZero():
		resp.Cursor = head.String()
	default:
		resp.Cursor = since.String()
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// handleAck is POST /v1/ack, for SSE clients: {"ids":["…"]}.
func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		IDs []string `json:"ids"`
	}
	if err := decodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if len(req.IDs) == 0 || len(req.IDs) > maxAckIDs {
		return invalidField("ids", "1-1000 notification ids required")
	}
	for _, id := range req.IDs {
		if id == "" || len(id) > 128 {
			return invalidField("ids", "malformed id")
		}
	}
	user := userClaims(r).Subject
	if ok, retry := s.limits.allow(s.limits.acks, "ack", "http", user, len(req.IDs)); !ok {
		writeRateLimited(w, retry)
		return nil
	}
	s.hub.Ack(user, req.IDs)
	writeJSON(w, http.StatusOK, map[string]int{"acked": len(req.IDs)})
	return nil
}

// withMarks adds the times of the notification's read state to its JSON
// object (delivered_at: first pushed to a device, seen_at, read_at,
// dismissed_at; absent while not so).
func withMarks(obj []byte, m notification.Marks) []byte {
	if m == (notification.Marks{}) {
		return obj
	}
	b := obj[:len(obj)-1]
	for _, f := range []struct {
		name string
		at   time.Time
	}{{"delivered_at", m.Delivered}, {"seen_at", m.Seen}, {"read_at", m.Read}, {"dismissed_at", m.Dismissed}} {
		if f.at.IsZero() {
			continue
		}
		b = append(b, `,"`...)
		b = append(b, f.name...)
		b = append(b, `":"`...)
		b = f.at.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}
