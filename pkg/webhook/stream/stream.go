// Package stream adapts Stream Chat webhooks: it verifies X-Signature and
// turns message.new, message.updated and message.deleted into message
// events, message.read into a read of the channel, and member and
// channel-deletion events into membership changes.
package stream

import (
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Name is the provider's endpoint segment: /webhooks/stream.
const Name = "stream"

const (
	headerSignature = "X-Signature"
	headerWebhookID = "X-Webhook-Id"
)

// Provider verifies and parses Stream Chat webhooks. It is safe for
// concurrent use.
type Provider struct {
	secret []byte
}

var _ webhook.Provider = (*Provider)(nil)

// New returns a Provider for the app's API secret. With an empty secret
// every request fails Verify.
func New(apiSecret string) *Provider { return &Provider{secret: []byte(apiSecret)} }

// Name implements webhook.Provider.
func (p *Provider) Name() string { return Name }

var (
	eventTypes = []string{"message.new", "message.updated", "message.deleted", "message.read", "member.added", "member.removed", "channel.deleted"}
	knownTypes = []string{
		"message.new", "message.updated", "message.deleted", "message.read", "message.flagged",
		"reaction.new", "reaction.updated", "reaction.deleted",
		"member.added", "member.updated", "member.removed",
		"channel.created", "channel.updated", "channel.deleted", "channel.truncated",
		"channel.hidden", "channel.visible",
		"user.updated", "user.deleted", "user.banned", "user.unbanned",
	}
)

// EventTypes implements webhook.Provider.
func (p *Provider) EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventTypes implements webhook.Provider.
func (p *Provider) KnownEventTypes() []string { return slices.Clone(knownTypes) }

// Sign returns the X-Signature value for body: hex HMAC-SHA256 of the raw
// body under the API secret.
func Sign(apiSecret string, body []byte) string {
	return hex.EncodeToString(webhook.HMACSHA256([]byte(apiSecret), body))
}

// Verify implements webhook.Provider. Stream signs the body only, with no
// timestamp; replays are stopped by the pipeline's dedupe. now is unused.
func (p *Provider) Verify(h http.Header, body []byte, _ time.Time) error {
	return webhook.VerifyBodyHMAC(Name, headerSignature, p.secret, h, body, webhook.EqualHex)
}

type user struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
	// Stream's unread counts, on the event's user where they apply (after
	// a message.read, the reader's).
	TotalUnreadCount   *int `json:"total_unread_count"`
	UnreadChannels     *int `json:"unread_channels"`
	ChannelUnreadCount *int `json:"channel_unread_count"`
}

type payload struct {
	Type    string `json:"type"`
	CID     string `json:"cid"`
	Channel *struct {
		Name string `json:"name"`
	} `json:"channel"`
	Message *struct {
		ID        string            `json:"id"`
		Text      string            `json:"text"`
		User      *user             `json:"user"`
		UpdatedAt webhook.Timestamp `json:"updated_at"`
	} `json:"message"`
	User    *user `json:"user"`
	Members []struct {
		UserID string `json:"user_id"`
	} `json:"members"`
	Member *struct {
		UserID string `json:"user_id"`
	} `json:"member"`
	// message.read only.
	LastReadMessageID string `json:"last_read_message_id"`
	Thread            *struct {
		ParentMessageID string `json:"parent_message_id"`
	} `json:"thread"`
	ThreadID  string            `json:"thread_id"`
	CreatedAt webhook.Timestamp `json:"created_at"`
}

// Parse implements webhook.Provider. The conversation is the channel's
// cid ("type:id"). The event id is the X-Webhook-Id header when Stream
// sends it, else "stream:<type>:<message id>" (plus the update time for
// message.updated), "stream:message.read:<cid>:<reader>:<created_at in
// Unix ms>" for a read, or "stream:<type>:<hash of the body>" for other
// events. When the payload lists the channel's members they are the
// recipients, less the sender; otherwise the membership store is used.
func (p *Provider) Parse(h http.Header, body []byte) (webhook.Event, error) {
	var d payload
	if err := webhook.Decode(body, "", &d); err != nil {
		return webhook.Event{}, err
	}
	if d.Type == "" {
		return webhook.Event{}, webhook.Missing("type")
	}
	ev := webhook.Event{Provider: Name, ID: h.Get(headerWebhookID), Type: d.Type, Created: d.CreatedAt.Time}
	if !slices.Contains(eventTypes, d.Type) {
		return ev, nil
	}
	if d.CID == "" {
		return webhook.Event{}, webhook.Missing("cid")
	}
	ev.Conversation = d.CID
	if d.Channel != nil {
		ev.ConversationName = d.Channel.Name
	}
	switch d.Type {
	case "message.read":
		return parseRead(ev, &d)
	case "member.added", "member.removed", "channel.deleted":
		if ev.ID == "" {
			ev.ID = webhook.DerivedID(Name, d.Type, webhook.BodyID(body))
		}
		m := &notification.Membership{Conversation: d.CID}
		switch {
		case d.Type == "channel.deleted":
			m.Deleted = true
		case d.Member == nil || d.Member.UserID == "":
			return webhook.Event{}, webhook.Missing("member.user_id")
		case d.Type == "member.added":
			m.Add = []string{d.Member.UserID}
		default:
			m.Remove = []string{d.Member.UserID}
		}
		ev.Kind = webhook.KindMembership
		ev.Members = m
		return ev, nil
	}
	if d.Message == nil || d.Message.ID == "" {
		return webhook.Event{}, webhook.Missing("message.id")
	}
	sender := d.User
	if d.Message.User != nil && d.Message.User.ID != "" {
		sender = d.Message.User
	}
	if (sender == nil || sender.ID == "") && d.Type != "message.deleted" {
		return webhook.Event{}, webhook.Missing("user.id")
	}
	switch d.Type {
	case "message.new":
		ev.Kind = webhook.KindMessage
	case "message.updated":
		ev.Kind = webhook.KindUpdate
	default:
		ev.Kind = webhook.KindRetract
	}
	if ev.ID == "" {
		ev.ID = webhook.DerivedID(Name, d.Type, d.Message.ID)
		if ev.Kind == webhook.KindUpdate {
			ev.ID = webhook.DerivedID(ev.ID, strconv.FormatInt(d.Message.UpdatedAt.UnixMilli(), 10))
		}
	}
	ev.Message = d.Message.ID
	ev.Text = d.Message.Text
	ev.Data = map[string]any{"conversationId": ev.Conversation, "messageId": ev.Message}
	if sender != nil {
		ev.Sender, ev.SenderName, ev.Icon = sender.ID, sender.Name, sender.Image
		if ev.Sender != "" {
			ev.Data["senderId"] = ev.Sender
		}
	}
	if d.Members != nil {
		ids := make([]string, len(d.Members))
		for i, m := range d.Members {
			ids[i] = m.UserID
		}
		ev.Members = &notification.Membership{Conversation: d.CID, Set: webhook.Recipients(ids)}
		ev.Recipients = webhook.Recipients(ids, ev.Sender)
	}
	return ev, nil
}

// parseRead reads message.read: the user marked the channel read, up to
// last_read_message_id when Stream names it. The id differs per reader and
// per read, since one channel is read by many users, many times.
func parseRead(ev webhook.Event, d *payload) (webhook.Event, error) {
	if d.User == nil || d.User.ID == "" {
		return webhook.Event{}, webhook.Missing("user.id")
	}
	if ev.ID == "" {
		ev.ID = webhook.DerivedID(Name, d.Type, d.CID, d.User.ID, strconv.FormatInt(d.CreatedAt.UnixMilli(), 10))
	}
	if d.Thread != nil || d.ThreadID != "" {
		// A thread marked read leaves the channel's own messages unread:
		// clearing the channel's notifications would hide unread ones.
		return webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type, Created: ev.Created}, nil
	}
	ev.Kind = webhook.KindRead
	ev.Recipients = []string{d.User.ID}
	ev.Message = d.LastReadMessageID
	ev.Data = map[string]any{"conversationId": ev.Conversation}
	if ev.Message != "" {
		ev.Data["messageId"] = ev.Message
	}
	for key, n := range map[string]*int{
		"total_unread_count":   d.User.TotalUnreadCount,
		"unread_channels":      d.User.UnreadChannels,
		"channel_unread_count": d.User.ChannelUnreadCount,
	} {
		if n != nil {
			ev.Data[key] = *n
		}
	}
	return ev, nil
}
