// Package webhook defines what a chat platform's webhook becomes inside
// Herald: a Provider verifies and parses one platform's requests into
// Events, and the pipeline (verify, dedupe, queue, workers) is shared.
//
// A provider is one small package under pkg/webhook (talkjs, cometchat,
// amity, notifly, standard, ...): it knows the platform's signature scheme
// and payload shapes, nothing of queues, users' preferences or delivery.
package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
)

// MaxSkew is how far a signed timestamp may be from now before the request
// counts as a replay.
const MaxSkew = 5 * time.Minute

// Provider verifies and parses one platform's webhooks.
type Provider interface {
	// Name is the path segment of the provider's endpoint: /webhooks/{name}.
	Name() string
	// Verify checks the request's signature or credentials over the raw
	// body, comparing in constant time. It returns an error wrapping
	// ErrUnauthorized (bad or missing signature/credentials) or ErrStale
	// (timestamp outside MaxSkew of now).
	Verify(h http.Header, body []byte, now time.Time) error
	// Parse turns a verified body into one Event. Malformed JSON or a
	// missing required field returns a *FieldError; an event type Herald
	// does not act on returns an Event of KindIgnore (with ID and Type set
	// where the payload has them).
	Parse(h http.Header, body []byte) (Event, error)
	// EventTypes lists the provider's event types Herald acts on, and
	// Known the provider's documented event types, for coverage metrics.
	EventTypes() []string
	KnownEventTypes() []string
}

// Errors a Provider returns.
var (
	ErrUnauthorized = errors.New("webhook: bad or missing signature")
	ErrStale        = errors.New("webhook: timestamp outside the allowed window")
)

// FieldError is a payload problem: malformed JSON (Field empty) or a
// required field missing or of the wrong type (Field is its JSON path,
// e.g. "data.conversation.id").
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "webhook: " + e.Reason
	}
	return fmt.Sprintf("webhook: %s: %s", e.Field, e.Reason)
}

// Missing is a FieldError for an absent required field.
func Missing(field string) error { return &FieldError{Field: field, Reason: "required"} }

// Malformed is a FieldError for a body that is not the expected JSON.
func Malformed(err error) error { return &FieldError{Reason: "malformed JSON: " + err.Error()} }

// Kind says what an event asks Herald to do.
type Kind int

const (
	// KindIgnore: a valid event Herald does not act on (answered 200 "ignored").
	KindIgnore Kind = iota
	// KindMessage: a new chat message; notify the recipients.
	KindMessage
	// KindUpdate: a message was edited; replace its notification (same tag).
	KindUpdate
	// KindRetract: a message was deleted, or a call ended; close its popup.
	KindRetract
	// KindNotification: a ready-made notification for named recipients
	// (CometChat's custom provider, TalkJS notification.triggered, the
	// native Standard Webhooks format). Title/Body come from the event.
	KindNotification
	// KindMembership: only a membership change (Event.Members).
	KindMembership
	// KindRead: Recipients (the readers) read the conversation, up to
	// Message when the provider names it; their notifications of the
	// conversation are marked read and cleared everywhere.
	KindRead
)

var kindNames = [...]string{"ignore", "message", "update", "retract", "notification", "membership", "read"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Event is one webhook, normalized. Only the fields a provider knows are set.
type Event struct {
	Provider string `json:"provider"`
	// ID is the provider's event id, or a key derived from the payload where
	// it has none; the pipeline drops a second event with the same ID.
	ID   string `json:"id"`
	Type string `json:"type"` // the provider's event type, e.g. "message.sent"
	Kind Kind   `json:"kind"`

	Conversation string `json:"conversation,omitempty"`
	// ConversationName is the group or conversation subject, when known.
	ConversationName string `json:"conversation_name,omitempty"`
	Message          string `json:"message,omitempty"` // message id
	Sender           string `json:"sender,omitempty"`  // never notified
	SenderName       string `json:"sender_name,omitempty"`
	Text             string `json:"text,omitempty"` // message text, before templating

	// Recipients names who is notified; nil means the conversation's
	// members (from Members, or the membership store). Exclude is never
	// notified (e.g. TalkJS participants with notify: false).
	Recipients []string `json:"recipients,omitempty"`
	Exclude    []string `json:"exclude,omitempty"`

	// Ready-made content; templates fill what is empty.
	Title   string `json:"title,omitempty"`
	Body    string `json:"body,omitempty"`
	URL     string `json:"url,omitempty"`
	Icon    string `json:"icon,omitempty"`
	Tag     string `json:"tag,omitempty"`
	Urgency string `json:"urgency,omitempty"` // high|normal|low
	TTL     int    `json:"ttl,omitempty"`     // seconds; 0 = default
	// RetractID names the notification to retract when the provider knows
	// it (CometChat call cancelled → the ringing popup's id); otherwise the
	// pipeline derives it from Provider, Message and the recipient.
	RetractID string         `json:"retract_id,omitempty"`
	Data      map[string]any `json:"data,omitempty"` // carried into the notification's data

	// Members is the conversation's membership as the event states it, for
	// membership events and for message events that carry the full list.
	Members *notification.Membership `json:"members,omitempty"`

	Created time.Time `json:"created"`
}
