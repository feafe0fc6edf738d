package server

import (
	"context"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/notification"
)

// Limits of the retraction API.
const (
	// maxRetractUsers caps the users of one POST /v1/retract: each costs
	// a history read, unlike a send's recipients.
	maxRetractUsers = 1000
	// retractTagScan is how many of a user's newest events a retraction
	// by tag looks through for notifications whose pending push it
	// cancels. A push is pending for at most the ack timeout, or while
	// it is retried; a notification that many events back has long been
	// pushed or acked.
	retractTagScan = 200
)

// A retraction closes what the app sent, as a deleted message's webhook
// does: the retract event goes into the user's history and to every live
// session (the popup closes by id or tag); the fallback replaces or
// cancels pending pushes and sends devices a push that closes what they
// showed (delivery.Fallback schedules retractions at once).

type retraction struct {
	ID   string `json:"id"`
	User string `json:"user"`
	Tag  string `json:"tag,omitempty"`
}

type retractResponse struct {
	Retractions []retraction `json:"retractions"`
}

// handleDeleteNotification is DELETE /v1/notifications/{id}?user=. The id
// is one that POST /v1/notifications returned; those are per recipient, so
// the user named beside it in that answer is required here, which saves
// an id → user index written for every notification sent. 404 when the
// user's retained history has no such notification.
func (s *Server) handleDeleteNotification(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if id == "" || len(id) > maxIdemKeyLen || !utf8.ValidString(id) {
		return invalidField("id", "must be 1-256 bytes of UTF-8")
	}
	user := r.URL.Query().Get("user")
	if user == "" {
		return invalidField("user", "required (the user the notification id was sent to)")
	}
	if err := validUserID(user); err != nil {
		return invalidField("user", err.Error())
	}
	ctx := r.Context()
	limit := s.cfg.HistoryMaxCount
	if limit <= 0 {
		limit = 1000
	}
	events, _, err := s.broker.History(ctx, user, notification.Cursor{}, limit)
	if err != nil {
		s.log.Warn("retract history read failed", "err", err)
		return errUnavailable
	}
	found := false
	for _, ev := range events {
		if ev.Kind == notification.KindNotification && ev.ID == id {
			found = true
			break
		}
	}
	if !found {
		return codeNotFound.with("no notification with this id for this user")
	}
	// By id only: a tag would also close a newer notification that
	// replaced this one. The retraction has the notification's id, so its
	// push replaces the notification's pending one (same key).
	ev, err := notification.NewRetractEvent(user, id, "", time.Now().UTC())
	if err != nil {
		return err
	}
	if _, err := s.delivery.Publish(ctx, []*notification.Event{ev}, delivery.PublishOptions{}); err != nil {
		s.log.Warn("retract publish failed", "err", err)
		return errUnavailable
	}
	writeJSON(w, http.StatusAccepted, retractResponse{Retractions: []retraction{{ID: id, User: user}}})
	return nil
}

type retractRequest struct {
	Tag   string   `json:"tag"`
	Users []string `json:"users"`
}

func (req *retractRequest) validate() error {
	bad := func(field, msg string) error {
		return invalidField(field, msg)
	}
	if req.Tag == "" {
		return bad("tag", "required")
	}
	if len(req.Tag) > maxTagLen || !utf8.ValidString(req.Tag) {
		return bad("tag", "must be at most 256 bytes of UTF-8")
	}
	if len(req.Users) == 0 {
		return bad("users", "at least one user is required")
	}
	if len(req.Users) > maxRetractUsers {
		return bad("users", "at most 1000 users per request")
	}
	for _, u := range req.Users {
		if err := validUserID(u); err != nil {
			return bad("users", err.Error())
		}
	}
	return nil
}

// handleRetract is POST /v1/retract {"tag","users"}: each user's
// notifications with the tag are closed. Each retraction gets an id of
// its own (its push must not replace another's pending one); the pending
// pushes of the tag's recent notifications are cancelled first, so none
// can show on a device after the push that closes them.
func (s *Server) handleRetract(w http.ResponseWriter, r *http.Request) error {
	var req retractRequest
	if err := decodeJSON(w, r, maxAPIBody, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	now := time.Now().UTC()
	events := make([]*notification.Event, 0, len(req.Users))
	resp := retractResponse{Retractions: make([]retraction, 0, len(req.Users))}
	for _, user := range notification.DistinctUsers(req.Users, nil) {
		if err := s.cancelTagPushes(ctx, user, req.Tag); err != nil {
			s.log.Warn("retract cancel pushes failed", "err", err)
			return errUnavailable
		}
		id := ulid.Make().String()
		ev, err := notification.NewRetractEvent(user, id, req.Tag, now)
		if err != nil {
			return err
		}
		events = append(events, ev)
		resp.Retractions = append(resp.Retractions, retraction{ID: id, User: user, Tag: req.Tag})
	}
	if _, err := s.delivery.Publish(ctx, events, delivery.PublishOptions{}); err != nil {
		s.log.Warn("retract publish failed", "err", err, "users", len(events))
		return errUnavailable
	}
	writeJSON(w, http.StatusAccepted, resp)
	return nil
}

// cancelTagPushes cancels the pending pushes of user's recent
// notifications with tag.
func (s *Server) cancelTagPushes(ctx context.Context, user, tag string) error {
	if s.push == nil || s.push.fallback == nil {
		return nil // push off: nothing is ever pending
	}
	events, _, err := s.broker.History(ctx, user, notification.Cursor{}, retractTagScan)
	if err != nil {
		return err
	}
	return s.push.fallback.CancelTagged(ctx, events, tag)
}
