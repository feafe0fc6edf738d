// Package notification defines what Herald delivers: the Notification as
// clients see it, the Event that the broker stores and fans out, the
// Cursor that orders a user's events, and the Membership of a conversation
// that decides whom a message in it reaches.
package notification

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// Urgency levels, as in Web Push.
const (
	UrgencyHigh   = "high"
	UrgencyNormal = "normal"
	UrgencyLow    = "low"
)

// DefaultType is the type of a notification that names none.
const DefaultType = "notification"

// Defaults returns typ and urgency with what a notification that leaves
// them empty gets: DefaultType, UrgencyNormal.
func Defaults(typ, urgency string) (string, string) {
	if typ == "" {
		typ = DefaultType
	}
	if urgency == "" {
		urgency = UrgencyNormal
	}
	return typ, urgency
}

// Notification is one message for one user, in the shape clients receive.
// Cursor is filled in when the notification is appended to the user's
// history; it is left out of the stored payload and spliced into frames.
type Notification struct {
	ID        string          `json:"id"`
	Cursor    string          `json:"cursor,omitempty"`
	User      string          `json:"user"`
	Type      string          `json:"type,omitempty"`
	Title     string          `json:"title,omitempty"`
	Body      string          `json:"body,omitempty"`
	Icon      string          `json:"icon,omitempty"`
	URL       string          `json:"url,omitempty"`
	Tag       string          `json:"tag,omitempty"`
	Urgency   string          `json:"urgency,omitempty"`
	TTL       int             `json:"ttl,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// NewEvent encodes n (without its cursor) into an Event ready to publish.
func NewEvent(n *Notification) (*Event, error) {
	c := *n
	c.Cursor = ""
	payload, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return &Event{
		User:    n.User,
		Kind:    KindNotification,
		ID:      n.ID,
		Tag:     n.Tag,
		Created: n.CreatedAt,
		Payload: payload,
	}, nil
}

// NewEvents encodes n for each of users, users[i] getting notification id
// ids[i]: the payloads NewEvent would give, from one encoding of the
// fields the recipients share (a fan-out encodes its notification once).
func NewEvents(n *Notification, users, ids []string) ([]*Event, error) {
	if len(ids) != len(users) {
		return nil, errors.New("notification: one id per user")
	}
	c := *n
	c.ID, c.Cursor, c.User = "", "", ""
	shared, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	const head = `{"id":"","user":""`
	if !bytes.HasPrefix(shared, []byte(head)) {
		return nil, errors.New("notification: unexpected encoding of the shared fields")
	}
	rest := shared[len(head):]
	events := make([]Event, len(users))
	out := make([]*Event, len(users))
	for i, user := range users {
		b := make([]byte, 0, len(head)+len(ids[i])+len(user)+len(rest)+8)
		b = append(b, `{"id":`...)
		b = appendJSONString(b, ids[i])
		b = append(b, `,"user":`...)
		b = appendJSONString(b, user)
		b = append(b, rest...)
		e := &events[i]
		e.User, e.Kind, e.ID, e.Tag, e.Created, e.Payload = user, KindNotification, ids[i], n.Tag, n.CreatedAt, b
		out[i] = e
	}
	return out, nil
}

// appendJSONString appends s as encoding/json writes it: plain ASCII
// directly, anything it would escape through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Retraction is the payload of a KindRetract event.
type Retraction struct {
	ID  string `json:"id"`
	Tag string `json:"tag,omitempty"`
}

// NewRetractEvent builds an event telling the user's clients to close the
// popup of notification id (or of tag).
func NewRetractEvent(user, id, tag string, at time.Time) (*Event, error) {
	payload, err := json.Marshal(Retraction{ID: id, Tag: tag})
	if err != nil {
		return nil, err
	}
	return &Event{User: user, Kind: KindRetract, ID: id, Tag: tag, Created: at, Payload: payload}, nil
}
