// Package notifly adapts Notifly webhooks: it verifies x-notifly-signature
// and turns message.* events into message events, and conversation.* and
// group.* events that state their members into membership changes.
package notifly

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Name is the provider's endpoint segment: /webhooks/notifly.
const Name = "notifly"

const headerSignature = "x-notifly-signature"

// Provider verifies and parses Notifly webhooks. It is safe for concurrent
// use.
type Provider struct {
	secret []byte
}

var _ webhook.Provider = (*Provider)(nil)

// New returns a Provider for the secret webhook key from Notifly's API
// settings. With an empty secret every request fails Verify.
func New(secret string) *Provider { return &Provider{secret: []byte(secret)} }

// Name implements webhook.Provider.
func (p *Provider) Name() string { return Name }

var (
	eventTypes = []string{
		"message.created", "message.updated", "message.deleted",
		"conversation.created", "conversation.updated", "conversation.deleted",
		"group.created", "group.updated", "group.deleted",
	}
	// The 15 documented types: five payload types, each created, updated
	// and deleted.
	knownTypes = []string{
		"contact.created", "contact.updated", "contact.deleted",
		"conversation.created", "conversation.updated", "conversation.deleted",
		"message.created", "message.updated", "message.deleted",
		"group.created", "group.updated", "group.deleted",
		"attachment.created", "attachment.updated", "attachment.deleted",
	}
)

// EventTypes implements webhook.Provider.
func (p *Provider) EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventTypes implements webhook.Provider.
func (p *Provider) KnownEventTypes() []string { return slices.Clone(knownTypes) }

// Sign returns the x-notifly-signature value for body: lower-case hex
// HMAC-SHA256 of the raw body under secret.
func Sign(secret string, body []byte) string {
	return hex.EncodeToString(webhook.HMACSHA256([]byte(secret), body))
}

// Verify implements webhook.Provider. Notifly signs the body only, with no
// timestamp, so a replayed request cannot be told from a retry here: the
// pipeline's dedupe by event id is what stops it. now is unused.
func (p *Provider) Verify(h http.Header, body []byte, _ time.Time) error {
	return webhook.VerifyBodyHMAC(Name, headerSignature, p.secret, h, body, webhook.EqualHex)
}

type envelope struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

type contact struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	AvatarURL string `json:"avatar_url"`
}

type message struct {
	ID             string            `json:"id"`
	ConversationID string            `json:"conversation_id"`
	Contact        *contact          `json:"contact"`
	Message        string            `json:"message"`
	CreatedAt      webhook.Timestamp `json:"created_at"`
	UpdatedAt      webhook.Timestamp `json:"updated_at"`
}

// conversation is a conversation or group payload. Notifly does not
// document their fields beyond id; members and participants are read if
// present, each entry a contact id or an object with id or contact_id.
type conversation struct {
	ID             string            `json:"id"`
	ConversationID string            `json:"conversation_id"`
	Name           string            `json:"name"`
	Members        []member          `json:"members"`
	Participants   []member          `json:"participants"`
	CreatedAt      webhook.Timestamp `json:"created_at"`
	UpdatedAt      webhook.Timestamp `json:"updated_at"`
}

// member is a contact id, or an object naming one.
type member string

func (m *member) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			ID        webhook.ID `json:"id"`
			ContactID webhook.ID `json:"contact_id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*m = member(o.ContactID)
		if o.ContactID == "" {
			*m = member(o.ID)
		}
		return nil
	}
	var id webhook.ID
	if err := json.Unmarshal(b, &id); err != nil {
		return err
	}
	*m = member(id)
	return nil
}

// Parse implements webhook.Provider.
func (p *Provider) Parse(_ http.Header, body []byte) (webhook.Event, error) {
	var env envelope
	if err := webhook.Decode(body, "", &env); err != nil {
		return webhook.Event{}, err
	}
	if env.Type == "" {
		return webhook.Event{}, webhook.Missing("type")
	}
	ev := webhook.Event{Provider: Name, ID: env.ID, Type: env.Type}
	if !slices.Contains(eventTypes, env.Type) {
		return ev, nil // contact.*, attachment.* and unknown types
	}
	if env.ID == "" {
		return webhook.Event{}, webhook.Missing("id")
	}
	switch env.Type {
	case "message.created", "message.updated", "message.deleted":
		return parseMessage(ev, env.Payload)
	default:
		return parseConversation(ev, env.Payload)
	}
}

func parseMessage(ev webhook.Event, raw json.RawMessage) (webhook.Event, error) {
	var m message
	if err := webhook.Decode(raw, "payload", &m); err != nil {
		return webhook.Event{}, err
	}
	switch {
	case m.ID == "":
		return webhook.Event{}, webhook.Missing("payload.id")
	case m.ConversationID == "":
		return webhook.Event{}, webhook.Missing("payload.conversation_id")
	case ev.Type != "message.deleted" && (m.Contact == nil || m.Contact.ID == ""):
		// Without the author Herald could notify them of their own message.
		return webhook.Event{}, webhook.Missing("payload.contact.id")
	}
	switch ev.Type {
	case "message.created":
		ev.Kind = webhook.KindMessage
		ev.Created = m.CreatedAt.Time
	case "message.updated":
		ev.Kind = webhook.KindUpdate
		ev.Created = m.UpdatedAt.Time
	default:
		ev.Kind = webhook.KindRetract
		ev.Created = m.UpdatedAt.Time
	}
	if ev.Created.IsZero() {
		ev.Created = m.CreatedAt.Time
	}
	ev.Conversation = m.ConversationID
	ev.Message = m.ID
	ev.Text = m.Message
	if m.Contact != nil {
		ev.Sender = m.Contact.ID
		ev.SenderName = m.Contact.Username
		ev.Icon = m.Contact.AvatarURL
	}
	ev.Data = map[string]any{"conversationId": ev.Conversation, "messageId": ev.Message}
	if ev.Sender != "" {
		ev.Data["senderId"] = ev.Sender
	}
	return ev, nil
}

func parseConversation(ev webhook.Event, raw json.RawMessage) (webhook.Event, error) {
	var c conversation
	if err := webhook.Decode(raw, "payload", &c); err != nil {
		return webhook.Event{}, err
	}
	if c.ID == "" {
		return webhook.Event{}, webhook.Missing("payload.id")
	}
	// A group's messages name its conversation_id when it has one.
	key := c.ID
	if c.ConversationID != "" {
		key = c.ConversationID
	}
	ignored := webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type}
	ev.Kind = webhook.KindMembership
	ev.Conversation = key
	ev.ConversationName = c.Name
	ev.Created = c.UpdatedAt.Time
	if ev.Created.IsZero() {
		ev.Created = c.CreatedAt.Time
	}
	switch ev.Type {
	case "conversation.deleted", "group.deleted":
		ev.Members = &notification.Membership{Conversation: key, Deleted: true}
		return ev, nil
	}
	list := c.Members
	if list == nil {
		list = c.Participants
	}
	if list == nil {
		return ignored, nil // nothing said about members
	}
	ids := make([]string, len(list))
	for i, m := range list {
		ids[i] = string(m)
	}
	ev.Members = &notification.Membership{Conversation: key, Set: webhook.Recipients(ids)}
	return ev, nil
}
