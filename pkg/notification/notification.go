// Package notification defines what Herald delivers: the Notification as
// clients see it, the Event that the broker stores and fans out, and the
// Cursor that orders a user's events.
package notification

import (
	"encoding/json"
	"time"
)

// Urgency levels, as in Web Push.
const (
	UrgencyHigh   = "high"
	UrgencyNormal = "normal"
	UrgencyLow    = "low"
)

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
