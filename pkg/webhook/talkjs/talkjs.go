// Package talkjs adapts TalkJS webhooks: it verifies X-TalkJS-Signature and
// turns message.sent, message.updated, message.deleted, message.read,
// notification.triggered and conversation.deleted into webhook Events.
package talkjs

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Name is the provider's endpoint segment: /webhooks/talkjs.
const Name = "talkjs"

const (
	headerSignature = "X-TalkJS-Signature"
	headerTimestamp = "X-TalkJS-Timestamp"
)

// Provider verifies and parses TalkJS webhooks. It is safe for concurrent
// use.
type Provider struct {
	secret []byte
}

var _ webhook.Provider = (*Provider)(nil)

// New returns a Provider for the app's webhook secret (the TalkJS
// dashboard's secret key). With an empty secret every request fails Verify.
func New(secret string) *Provider { return &Provider{secret: []byte(secret)} }

// Name implements webhook.Provider.
func (p *Provider) Name() string { return Name }

var (
	eventTypes = []string{"message.sent", "message.updated", "message.deleted", "message.read", "notification.triggered", "conversation.deleted"}
	knownTypes = []string{
		"user.created", "user.updated",
		"message.sent", "message.read", "message.updated", "message.deleted",
		"conversation.deleted",
		"notification.triggered", "notification.sent", "notification.delivered",
		"notification.bounced", "notification.opened", "notification.link.clicked",
	}
)

// EventTypes implements webhook.Provider.
func (p *Provider) EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventTypes implements webhook.Provider.
func (p *Provider) KnownEventTypes() []string { return slices.Clone(knownTypes) }

// Sign returns the X-TalkJS-Signature and X-TalkJS-Timestamp header values
// TalkJS would send for body at ts: upper-case hex HMAC-SHA256 under secret
// of the millisecond timestamp, a dot, and the body.
func Sign(secret string, ts time.Time, body []byte) (signature, timestamp string) {
	timestamp = strconv.FormatInt(ts.UnixMilli(), 10)
	mac := webhook.HMACSHA256([]byte(secret), []byte(timestamp), []byte("."), body)
	return strings.ToUpper(hex.EncodeToString(mac)), timestamp
}

// Verify implements webhook.Provider. The signature is checked before the
// timestamp, so only an authentic request can be reported as stale.
func (p *Provider) Verify(h http.Header, body []byte, now time.Time) error {
	if len(p.secret) == 0 {
		return webhook.Unauthorized("talkjs: no secret configured")
	}
	sig, rawTS := h.Get(headerSignature), h.Get(headerTimestamp)
	if sig == "" {
		return webhook.Unauthorized("talkjs: missing " + headerSignature)
	}
	if rawTS == "" {
		return webhook.Unauthorized("talkjs: missing " + headerTimestamp)
	}
	ts, err := webhook.ParseUnix(rawTS, time.Millisecond)
	if err != nil {
		return webhook.Unauthorized("talkjs: " + err.Error())
	}
	// The header is signed as sent, not as re-formatted.
	mac := webhook.HMACSHA256(p.secret, []byte(strings.TrimSpace(rawTS)), []byte("."), body)
	if !webhook.EqualHex(sig, mac) {
		return webhook.Unauthorized("talkjs: signature mismatch")
	}
	return webhook.CheckSkew(ts, now)
}

type envelope struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	CreatedAt webhook.Timestamp `json:"createdAt"`
	Data      json.RawMessage   `json:"data"`
}

type user struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	PhotoURL string `json:"photoUrl"`
}

// participant is one entry of conversation.participants. notify is true,
// false or "MentionsOnly".
type participant struct {
	Notify json.RawMessage `json:"notify"`
}

type conversation struct {
	ID           string                 `json:"id"`
	Subject      string                 `json:"subject"`
	Participants map[string]participant `json:"participants"`
}

type message struct {
	ID             string            `json:"id"`
	ConversationID string            `json:"conversationId"`
	Text           string            `json:"text"`
	SenderID       string            `json:"senderId"`
	CreatedAt      webhook.Timestamp `json:"createdAt"`
}

type messageData struct {
	Conversation *conversation `json:"conversation"`
	Message      *message      `json:"message"`
	Sender       *user         `json:"sender"`
}

// readData is message.read's: the message, its conversation, and the
// recipient, who is the user that read it.
type readData struct {
	Conversation *conversation `json:"conversation"`
	Message      *message      `json:"message"`
	Recipient    *user         `json:"recipient"`
}

type notificationData struct {
	Recipient    *user         `json:"recipient"`
	Sender       *user         `json:"sender"`
	Conversation *conversation `json:"conversation"`
	Messages     []message     `json:"messages"`
}

// anyData is every data field of the event types Herald maps, so that a
// webhook of one of them is decoded in one pass over the body. A body this
// does not fit (null data, a type error) takes the two-pass path, which
// names the field at fault.
type anyData struct {
	Conversation *conversation `json:"conversation"`
	Message      *message      `json:"message"`
	Sender       *user         `json:"sender"`
	Recipient    *user         `json:"recipient"`
	Messages     []message     `json:"messages"`
}

type onePass struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	CreatedAt webhook.Timestamp `json:"createdAt"`
	Data      *anyData          `json:"data"`
}

// Parse implements webhook.Provider.
func (p *Provider) Parse(_ http.Header, body []byte) (webhook.Event, error) {
	var one onePass
	if json.Unmarshal(body, &one) == nil && one.ID != "" && one.Data != nil {
		ev := webhook.Event{Provider: Name, ID: one.ID, Type: one.Type, Created: one.CreatedAt.Time}
		d := one.Data
		switch one.Type {
		case "message.sent", "message.updated", "message.deleted":
			return parseMessage(ev, messageData{Conversation: d.Conversation, Message: d.Message, Sender: d.Sender})
		case "message.read":
			return parseRead(ev, readData{Conversation: d.Conversation, Message: d.Message, Recipient: d.Recipient})
		case "notification.triggered":
			return parseNotification(ev, notificationData{Recipient: d.Recipient, Sender: d.Sender, Conversation: d.Conversation, Messages: d.Messages})
		}
	}
	var env envelope
	if err := webhook.Decode(body, "", &env); err != nil {
		return webhook.Event{}, err
	}
	if env.Type == "" {
		return webhook.Event{}, webhook.Missing("type")
	}
	ev := webhook.Event{Provider: Name, ID: env.ID, Type: env.Type, Created: env.CreatedAt.Time}
	if !slices.Contains(eventTypes, env.Type) {
		return ev, nil // KindIgnore
	}
	if env.ID == "" {
		return webhook.Event{}, webhook.Missing("id")
	}
	switch env.Type {
	case "message.sent", "message.updated", "message.deleted":
		var d messageData
		if err := webhook.Decode(env.Data, "data", &d); err != nil {
			return webhook.Event{}, err
		}
		return parseMessage(ev, d)
	case "message.read":
		var d readData
		if err := webhook.Decode(env.Data, "data", &d); err != nil {
			return webhook.Event{}, err
		}
		return parseRead(ev, d)
	case "notification.triggered":
		var d notificationData
		if err := webhook.Decode(env.Data, "data", &d); err != nil {
			return webhook.Event{}, err
		}
		return parseNotification(ev, d)
	case "conversation.deleted":
		var d messageData
		if err := webhook.Decode(env.Data, "data", &d); err != nil {
			return webhook.Event{}, err
		}
		if d.Conversation == nil || d.Conversation.ID == "" {
			return webhook.Event{}, webhook.Missing("data.conversation.id")
		}
		ev.Kind = webhook.KindMembership
		ev.Conversation = d.Conversation.ID
		ev.Members = &notification.Membership{Conversation: d.Conversation.ID, Deleted: true}
		return ev, nil
	}
	return ev, nil
}

func parseMessage(ev webhook.Event, d messageData) (webhook.Event, error) {
	switch {
	case d.Conversation == nil:
		return webhook.Event{}, webhook.Missing("data.conversation")
	case d.Conversation.ID == "":
		return webhook.Event{}, webhook.Missing("data.conversation.id")
	case d.Message == nil:
		return webhook.Event{}, webhook.Missing("data.message")
	case d.Message.ID == "":
		return webhook.Event{}, webhook.Missing("data.message.id")
	case ev.Type == "message.sent" && d.Conversation.Participants == nil:
		// The recipients of a new message come only from here.
		return webhook.Event{}, webhook.Missing("data.conversation.participants")
	}
	switch ev.Type {
	case "message.sent":
		ev.Kind = webhook.KindMessage
	case "message.updated":
		ev.Kind = webhook.KindUpdate
	default:
		ev.Kind = webhook.KindRetract
	}
	sender := d.Message.SenderID
	if d.Sender != nil {
		if d.Sender.ID != "" {
			sender = d.Sender.ID
		}
		ev.SenderName = d.Sender.Name
		ev.Icon = d.Sender.PhotoURL
	}
	ev.Conversation = d.Conversation.ID
	ev.ConversationName = d.Conversation.Subject
	ev.Message = d.Message.ID
	ev.Sender = sender
	ev.Text = d.Message.Text
	if ev.Created.IsZero() {
		ev.Created = d.Message.CreatedAt.Time
	}
	ev.Data = eventData(ev)
	if parts := d.Conversation.Participants; parts != nil {
		all, muted := participants(parts)
		if ev.Kind == webhook.KindRetract {
			// A popup shown before the user muted the conversation still
			// has to close.
			muted = nil
		}
		ev.Exclude = webhook.Recipients(muted, sender)
		ev.Recipients = webhook.Recipients(all, append(muted, sender)...)
		if len(ev.Exclude) == 0 {
			ev.Exclude = nil
		}
		ev.Members = &notification.Membership{Conversation: ev.Conversation, Set: all}
	}
	return ev, nil
}

// parseRead reads message.read, which TalkJS sends once per member other
// than the sender, when the member's chat UI shows the message: that
// member read the conversation up to the message. TalkJS's event id is
// per event, so per reader.
func parseRead(ev webhook.Event, d readData) (webhook.Event, error) {
	switch {
	case d.Recipient == nil || d.Recipient.ID == "":
		return webhook.Event{}, webhook.Missing("data.recipient.id")
	case d.Message == nil || d.Message.ID == "":
		return webhook.Event{}, webhook.Missing("data.message.id")
	}
	conv := d.Message.ConversationID
	if d.Conversation != nil && d.Conversation.ID != "" {
		conv = d.Conversation.ID // what message.sent names the conversation by
	}
	if conv == "" {
		return webhook.Event{}, webhook.Missing("data.conversation.id")
	}
	ev.Kind = webhook.KindRead
	ev.Conversation = conv
	ev.Message = d.Message.ID
	ev.Recipients = []string{d.Recipient.ID}
	ev.Data = eventData(ev)
	return ev, nil
}

// participants returns every participant id, sorted, and those who asked
// not to be notified. "MentionsOnly" counts as not notified: Herald does
// not see mentions, and a notification the user opted out of is worse than
// a missed mention.
func participants(m map[string]participant) (all, muted []string) {
	all = make([]string, 0, len(m))
	for id, pt := range m {
		if id == "" {
			continue
		}
		all = append(all, id)
		switch strings.TrimSpace(string(pt.Notify)) {
		case "false", `"MentionsOnly"`:
			muted = append(muted, id)
		}
	}
	slices.Sort(all)
	slices.Sort(muted)
	return all, muted
}

func parseNotification(ev webhook.Event, d notificationData) (webhook.Event, error) {
	switch {
	case d.Recipient == nil || d.Recipient.ID == "":
		return webhook.Event{}, webhook.Missing("data.recipient.id")
	case d.Conversation == nil || d.Conversation.ID == "":
		return webhook.Event{}, webhook.Missing("data.conversation.id")
	case len(d.Messages) == 0:
		return webhook.Event{}, webhook.Missing("data.messages")
	}
	last := d.Messages[len(d.Messages)-1]
	ev.Kind = webhook.KindNotification
	ev.Conversation = d.Conversation.ID
	ev.ConversationName = d.Conversation.Subject
	ev.Message = last.ID
	ev.Sender = last.SenderID
	if d.Sender != nil {
		if d.Sender.ID != "" {
			ev.Sender = d.Sender.ID
		}
		ev.SenderName = d.Sender.Name
		ev.Icon = d.Sender.PhotoURL
	}
	// Several messages are batched into one notification; their texts are
	// kept as sent, one a line, for the templates to shorten.
	texts := make([]string, 0, len(d.Messages))
	for _, m := range d.Messages {
		if m.Text != "" {
			texts = append(texts, m.Text)
		}
	}
	ev.Text = strings.Join(texts, "\n")
	if ev.Created.IsZero() {
		ev.Created = last.CreatedAt.Time
	}
	ev.Recipients = webhook.Recipients([]string{d.Recipient.ID}, ev.Sender)
	if len(ev.Recipients) == 0 {
		// Notified of one's own messages: nothing to deliver.
		return webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type}, nil
	}
	ev.Data = eventData(ev)
	return ev, nil
}

func eventData(ev webhook.Event) map[string]any {
	d := map[string]any{"conversationId": ev.Conversation}
	if ev.Message != "" {
		d["messageId"] = ev.Message
	}
	if ev.Sender != "" {
		d["senderId"] = ev.Sender
	}
	return d
}
