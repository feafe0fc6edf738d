// Package amity adapts Amity (social.plus) chat webhooks: it verifies
// x-amity-signature and turns message.* events into message events and
// channel membership events into membership changes.
package amity

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Name is the provider's endpoint segment: /webhooks/amity.
const Name = "amity"

const headerSignature = "x-amity-signature"

// Provider verifies and parses Amity webhooks. It is safe for concurrent
// use.
type Provider struct {
	secret []byte
}

var _ webhook.Provider = (*Provider)(nil)

// New returns a Provider for the network's webhook secret. With an empty
// secret every request fails Verify.
func New(secret string) *Provider { return &Provider{secret: []byte(secret)} }

// Name implements webhook.Provider.
func (p *Provider) Name() string { return Name }

var (
	eventTypes = []string{
		"message.didCreate", "message.didUpdate", "message.didDelete",
		"channel.didCreate", "channel.didDelete", "channel.didJoin", "channel.didLeave",
		"channel.didAddUsers", "channel.didRemoveUsers", "channel.didBan",
	}
	knownTypes = []string{
		"channel.didCreate", "channel.didUpdate", "channel.didDelete",
		"channel.didJoin", "channel.didLeave", "channel.didAddUsers", "channel.didRemoveUsers",
		"channel.didBan", "channel.didUnban",
		"message.didCreate", "message.didUpdate", "message.didDelete",
		"message.didFlag", "message.didUnflag", "message.didClearFlag",
		"message.didReact", "message.didUnreact",
		"user.didCreate", "user.didUpdate", "user.didFollow", "user.didJoinCommunity",
		"user.didFlag", "user.didBan", "user.didUnban",
		"post.didCreate", "post.didUpdate", "post.didDelete", "post.didReact",
		"comment.didCreate", "comment.didUpdate", "comment.didDelete",
	}
)

// EventTypes implements webhook.Provider.
func (p *Provider) EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventTypes implements webhook.Provider.
func (p *Provider) KnownEventTypes() []string { return slices.Clone(knownTypes) }

// Sign returns the x-amity-signature value for body: standard base64 of
// HMAC-SHA256 of the raw body under secret.
func Sign(secret string, body []byte) string {
	return base64.StdEncoding.EncodeToString(webhook.HMACSHA256([]byte(secret), body))
}

// Verify implements webhook.Provider. Amity signs the body only, with no
// timestamp, so a replay cannot be told from a retry here: the pipeline's
// dedupe by event id is what stops it. now is unused.
func (p *Provider) Verify(h http.Header, body []byte, _ time.Time) error {
	return webhook.VerifyBodyHMAC(Name, headerSignature, p.secret, h, body, webhook.EqualBase64)
}

type envelope struct {
	ID    string          `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

type message struct {
	MessageID string            `json:"messageId"`
	ChannelID string            `json:"channelId"`
	UserID    string            `json:"userId"`
	CreatorID string            `json:"creatorId"`
	Data      json.RawMessage   `json:"data"` // {"text": ...} for text messages; free-form for custom ones
	CreatedAt webhook.Timestamp `json:"createdAt"`
	UpdatedAt webhook.Timestamp `json:"updatedAt"`
	EditedAt  webhook.Timestamp `json:"editedAt"`
}

type user struct {
	UserID      string `json:"userId"`
	DisplayName string `json:"displayName"`
}

type channel struct {
	ChannelID   string `json:"channelId"`
	DisplayName string `json:"displayName"`
	MemberCount int    `json:"memberCount"`
}

type channelUser struct {
	ChannelID  string `json:"channelId"`
	UserID     string `json:"userId"`
	Membership string `json:"membership"` // member, banned, none
}

type payload struct {
	Messages     []message     `json:"messages"`
	MessageFeeds []message     `json:"messageFeeds"`
	Users        []user        `json:"users"`
	Channels     []channel     `json:"channels"`
	Channel      []channel     `json:"channel"` // channel.didUpdate's spelling
	ChannelUsers []channelUser `json:"channelUsers"`
	UserID       string        `json:"userId"`
}

// Parse implements webhook.Provider. Amity's payloads carry no event id;
// unless the body has a top-level "id", it is derived: "amity:<event>:
// <messageId>" for message.didCreate and didDelete, with ":<editedAt in
// ms>" added for didUpdate (each edit is its own event), and
// "amity:<event>:<hash of the body>" for channel events.
func (p *Provider) Parse(_ http.Header, body []byte) (webhook.Event, error) {
	var env envelope
	if err := webhook.Decode(body, "", &env); err != nil {
		return webhook.Event{}, err
	}
	if env.Event == "" {
		return webhook.Event{}, webhook.Missing("event")
	}
	ev := webhook.Event{Provider: Name, ID: env.ID, Type: env.Event}
	if !slices.Contains(eventTypes, env.Event) {
		return ev, nil
	}
	var d payload
	if err := webhook.Decode(env.Data, "data", &d); err != nil {
		return webhook.Event{}, err
	}
	switch env.Event {
	case "message.didCreate", "message.didUpdate", "message.didDelete":
		return parseMessage(ev, &d)
	}
	if ev.ID == "" {
		ev.ID = webhook.DerivedID(Name, env.Event, webhook.BodyID(body))
	}
	return parseChannel(ev, &d)
}

func parseMessage(ev webhook.Event, d *payload) (webhook.Event, error) {
	// Messages are under "messages"; some versions of the payload list them
	// under "messageFeeds" instead. The first entry with a messageId wins.
	var m *message
	list := "data.messages"
	for _, l := range []struct {
		path string
		ms   []message
	}{{"data.messages", d.Messages}, {"data.messageFeeds", d.MessageFeeds}} {
		for i := range l.ms {
			if l.ms[i].MessageID != "" {
				m, list = &l.ms[i], l.path+"["+strconv.Itoa(i)+"]"
				break
			}
		}
		if m != nil {
			break
		}
	}
	if m == nil {
		return webhook.Event{}, webhook.Missing("data.messages")
	}
	sender := m.UserID
	if sender == "" {
		sender = m.CreatorID
	}
	switch {
	case m.ChannelID == "":
		return webhook.Event{}, webhook.Missing(list + ".channelId")
	case sender == "" && ev.Type != "message.didDelete":
		// Without the author Herald could notify them of their own message.
		return webhook.Event{}, webhook.Missing(list + ".userId")
	}
	switch ev.Type {
	case "message.didCreate":
		ev.Kind = webhook.KindMessage
		ev.Created = m.CreatedAt.Time
	case "message.didUpdate":
		ev.Kind = webhook.KindUpdate
		ev.Created = m.EditedAt.Time
		if ev.Created.IsZero() {
			ev.Created = m.UpdatedAt.Time
		}
	default:
		ev.Kind = webhook.KindRetract
		ev.Created = m.UpdatedAt.Time
	}
	if ev.ID == "" {
		ev.ID = webhook.DerivedID(Name, ev.Type, m.MessageID)
		if ev.Kind == webhook.KindUpdate {
			ev.ID = webhook.DerivedID(ev.ID, strconv.FormatInt(ev.Created.UnixMilli(), 10))
		}
	}
	ev.Conversation = m.ChannelID
	ev.Message = m.MessageID
	ev.Sender = sender
	ev.Text = text(m.Data)
	for _, u := range d.Users {
		if u.UserID == sender && sender != "" {
			ev.SenderName = u.DisplayName
		}
	}
	ch := findChannel(d, m.ChannelID)
	if ch != nil {
		ev.ConversationName = ch.DisplayName
	}
	// channelUsers usually lists only the users the event touches; it is
	// the full membership only when it has as many members as the channel.
	if ch != nil && ch.MemberCount > 0 {
		if members := members(d, m.ChannelID, "member"); len(members) == ch.MemberCount {
			ev.Members = &notification.Membership{Conversation: m.ChannelID, Set: members}
		}
	}
	ev.Data = map[string]any{"conversationId": ev.Conversation, "messageId": ev.Message}
	if sender != "" {
		ev.Data["senderId"] = sender
	}
	return ev, nil
}

// text returns a text message's text; other message types have none.
func text(raw json.RawMessage) string {
	var d struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &d) != nil {
		return ""
	}
	return d.Text
}

func findChannel(d *payload, id string) *channel {
	for _, list := range [][]channel{d.Channels, d.Channel} {
		for i := range list {
			if list[i].ChannelID == id {
				return &list[i]
			}
		}
	}
	return nil
}

// members returns the ids of channelUsers of the channel, only those with
// the given membership when it is not empty.
func members(d *payload, channelID, membership string) []string {
	var ids []string
	for _, cu := range d.ChannelUsers {
		if cu.ChannelID != "" && cu.ChannelID != channelID {
			continue
		}
		if membership != "" && cu.Membership != "" && cu.Membership != membership {
			continue
		}
		ids = append(ids, cu.UserID)
	}
	return webhook.Recipients(ids)
}

func parseChannel(ev webhook.Event, d *payload) (webhook.Event, error) {
	var id string
	switch {
	case len(d.Channels) > 0:
		id = d.Channels[0].ChannelID
		ev.ConversationName = d.Channels[0].DisplayName
	case len(d.Channel) > 0:
		id = d.Channel[0].ChannelID
		ev.ConversationName = d.Channel[0].DisplayName
	case len(d.ChannelUsers) > 0:
		id = d.ChannelUsers[0].ChannelID
	}
	if id == "" {
		return webhook.Event{}, webhook.Missing("data.channels")
	}
	ignored := webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type}
	ev.Kind = webhook.KindMembership
	ev.Conversation = id
	m := &notification.Membership{Conversation: id}
	ev.Members = m
	switch ev.Type {
	case "channel.didDelete":
		m.Deleted = true
		return ev, nil
	case "channel.didCreate":
		m.Set = members(d, id, "member")
		if len(m.Set) == 0 {
			return ignored, nil
		}
		return ev, nil
	}
	users := members(d, id, "")
	if len(users) == 0 && d.UserID != "" {
		users = []string{d.UserID}
	}
	if len(users) == 0 {
		return ignored, nil // nothing said about who
	}
	switch ev.Type {
	case "channel.didJoin", "channel.didAddUsers":
		m.Add = users
	default: // didLeave, didRemoveUsers, didBan
		m.Remove = users
	}
	return ev, nil
}
