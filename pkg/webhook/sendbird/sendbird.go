// Package sendbird adapts Sendbird Chat webhooks: it verifies
// x-sendbird-signature and turns group channel message events into message
// events, message_read into a read of the channel, and join/leave/removal
// into membership changes.
package sendbird

import (
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Name is the provider's endpoint segment: /webhooks/sendbird.
const Name = "sendbird"

const headerSignature = "x-sendbird-signature"

// Provider verifies and parses Sendbird webhooks. It is safe for
// concurrent use.
type Provider struct {
	token []byte
}

var _ webhook.Provider = (*Provider)(nil)

// New returns a Provider for the application's API token (the master API
// token signs webhooks). With an empty token every request fails Verify.
func New(apiToken string) *Provider { return &Provider{token: []byte(apiToken)} }

// Name implements webhook.Provider.
func (p *Provider) Name() string { return Name }

var (
	eventTypes = []string{
		"group_channel:message_send", "group_channel:message_update", "group_channel:message_delete",
		"group_channel:message_read",
		"group_channel:join", "group_channel:leave", "group_channel:remove",
	}
	knownTypes = []string{
		"group_channel:create", "group_channel:changed", "group_channel:remove",
		"group_channel:invite", "group_channel:decline_invite", "group_channel:join", "group_channel:leave",
		"group_channel:message_send", "group_channel:message_read", "group_channel:message_update",
		"group_channel:message_delete", "group_channel:reaction_add", "group_channel:reaction_delete",
		"open_channel:create", "open_channel:remove", "open_channel:enter", "open_channel:exit",
		"open_channel:message_send", "open_channel:message_update", "open_channel:message_delete",
		"user:block", "user:unblock",
	}
)

// EventTypes implements webhook.Provider.
func (p *Provider) EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventTypes implements webhook.Provider.
func (p *Provider) KnownEventTypes() []string { return slices.Clone(knownTypes) }

// Sign returns the x-sendbird-signature value for body: hex HMAC-SHA256
// of the raw body under the API token.
func Sign(apiToken string, body []byte) string {
	return hex.EncodeToString(webhook.HMACSHA256([]byte(apiToken), body))
}

// Verify implements webhook.Provider. Sendbird signs the body only, with
// no timestamp; replays are stopped by the pipeline's dedupe. now is
// unused.
func (p *Provider) Verify(h http.Header, body []byte, _ time.Time) error {
	return webhook.VerifyBodyHMAC(Name, headerSignature, p.token, h, body, webhook.EqualHex)
}

type user struct {
	UserID     string `json:"user_id"`
	Nickname   string `json:"nickname"`
	ProfileURL string `json:"profile_url"`
}

type payload struct {
	Category string `json:"category"`
	Sender   *user  `json:"sender"`
	Payload  *struct {
		MessageID webhook.ID        `json:"message_id"`
		Message   string            `json:"message"`
		CreatedAt webhook.Timestamp `json:"created_at"`
		UpdatedAt webhook.Timestamp `json:"updated_at"`
	} `json:"payload"`
	Channel *struct {
		ChannelURL string `json:"channel_url"`
		Name       string `json:"name"`
	} `json:"channel"`
	Members []user `json:"members"`
	Users   []user `json:"users"`
	// message_read: the members whose read receipt moved, and to when.
	ReadUpdates []struct {
		UserID string            `json:"user_id"`
		ReadTS webhook.Timestamp `json:"read_ts"`
	} `json:"read_updates"`
	CreatedAt webhook.Timestamp `json:"created_at"`
}

// Parse implements webhook.Provider. The conversation is the channel_url.
// Sendbird's payloads carry no event id; it is derived as
// "sendbird:<category>:<channel_url>:<message_id>" (plus updated_at for
// message_update), or "sendbird:<category>:<hash of the body>" for reads
// and membership events. When the payload lists the members they are the
// recipients, less the sender.
func (p *Provider) Parse(_ http.Header, body []byte) (webhook.Event, error) {
	var d payload
	if err := webhook.Decode(body, "", &d); err != nil {
		return webhook.Event{}, err
	}
	if d.Category == "" {
		return webhook.Event{}, webhook.Missing("category")
	}
	ev := webhook.Event{Provider: Name, Type: d.Category, Created: d.CreatedAt.Time}
	if !slices.Contains(eventTypes, d.Category) {
		ev.ID = webhook.DerivedID(Name, d.Category, webhook.BodyID(body))
		return ev, nil
	}
	if d.Channel == nil || d.Channel.ChannelURL == "" {
		return webhook.Event{}, webhook.Missing("channel.channel_url")
	}
	conv := d.Channel.ChannelURL
	ev.Conversation = conv
	ev.ConversationName = d.Channel.Name
	switch d.Category {
	case "group_channel:message_read":
		ev.ID = webhook.DerivedID(Name, d.Category, webhook.BodyID(body))
		return parseRead(ev, &d)
	case "group_channel:join", "group_channel:leave", "group_channel:remove":
		ev.ID = webhook.DerivedID(Name, d.Category, webhook.BodyID(body))
		ev.Kind = webhook.KindMembership
		m := &notification.Membership{Conversation: conv}
		ev.Members = m
		if d.Category == "group_channel:remove" {
			m.Deleted = true
			return ev, nil
		}
		ids := make([]string, len(d.Users))
		for i, u := range d.Users {
			ids[i] = u.UserID
		}
		ids = webhook.Recipients(ids)
		if len(ids) == 0 {
			return webhook.Event{}, webhook.Missing("users")
		}
		if d.Category == "group_channel:join" {
			m.Add = ids
		} else {
			m.Remove = ids
		}
		return ev, nil
	}
	if d.Payload == nil || d.Payload.MessageID == "" {
		return webhook.Event{}, webhook.Missing("payload.message_id")
	}
	if (d.Sender == nil || d.Sender.UserID == "") && d.Category != "group_channel:message_delete" {
		return webhook.Event{}, webhook.Missing("sender.user_id")
	}
	msg := string(d.Payload.MessageID)
	ev.ID = webhook.DerivedID(Name, d.Category, conv, msg)
	switch d.Category {
	case "group_channel:message_send":
		ev.Kind = webhook.KindMessage
		if !d.Payload.CreatedAt.IsZero() {
			ev.Created = d.Payload.CreatedAt.Time
		}
	case "group_channel:message_update":
		ev.Kind = webhook.KindUpdate
		ev.ID = webhook.DerivedID(ev.ID, strconv.FormatInt(d.Payload.UpdatedAt.UnixMilli(), 10))
	default:
		ev.Kind = webhook.KindRetract
	}
	ev.Message = msg
	ev.Text = d.Payload.Message
	ev.Data = map[string]any{"conversationId": conv, "messageId": msg}
	if d.Sender != nil {
		ev.Sender, ev.SenderName, ev.Icon = d.Sender.UserID, d.Sender.Nickname, d.Sender.ProfileURL
		if ev.Sender != "" {
			ev.Data["senderId"] = ev.Sender
		}
	}
	if d.Members != nil {
		ids := make([]string, len(d.Members))
		for i, u := range d.Members {
			ids[i] = u.UserID
		}
		ev.Members = &notification.Membership{Conversation: conv, Set: webhook.Recipients(ids)}
		ev.Recipients = webhook.Recipients(ids, ev.Sender)
	}
	return ev, nil
}

// parseRead reads group_channel:message_read: each user in read_updates
// marked the channel read (Sendbird's read receipt is a time, not a
// message, so the whole channel up to then). The readers are sorted, so
// that one body always gives one event; Created is the latest read.
func parseRead(ev webhook.Event, d *payload) (webhook.Event, error) {
	ids := make([]string, len(d.ReadUpdates))
	for i, u := range d.ReadUpdates {
		ids[i] = u.UserID
		if u.ReadTS.After(ev.Created) {
			ev.Created = u.ReadTS.Time
		}
	}
	ids = webhook.Recipients(ids)
	if len(ids) == 0 {
		return webhook.Event{}, webhook.Missing("read_updates")
	}
	slices.Sort(ids)
	ev.Kind = webhook.KindRead
	ev.Recipients = ids
	ev.Data = map[string]any{"conversationId": ev.Conversation}
	return ev, nil
}
