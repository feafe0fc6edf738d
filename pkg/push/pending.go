package push

import "time"

// Pending is a push waiting for its moment: a notification that reached no
// live session (due at once), or one whose sessions have not acked it yet
// (due when the ack timeout ends). It is kept in the store, not in a timer,
// so it survives the node that scheduled it; an ack cancels it.
type Pending struct {
	User    string    `json:"user"`
	ID      string    `json:"id"` // the notification's id
	Due     time.Time `json:"due"`
	Message []byte    `json:"message"` // the Message, JSON-encoded
}

// Key identifies a pending push: one per user and notification.
func (p *Pending) Key() string { return PendingKey(p.User, p.ID) }

// PendingKey is the key of user's pending push of notification id.
func PendingKey(user, id string) string { return user + "\x00" + id }
