// Package cometchat adapts CometChat's webhooks: the "custom provider"
// push payloads (one request per recipient, ready-made title and body, call
// notifications) and the general webhooks' message, read-receipt and
// group-member triggers. Both are authenticated with HTTP Basic
// credentials.
package cometchat

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Name is the provider's endpoint segment: /webhooks/cometchat.
const Name = "cometchat"

// TriggerPush is the custom provider's trigger.
const TriggerPush = "push-notification-payload-generated"

// CallTTL is the time to live of a ringing call's notification: after it a
// call is not worth answering.
const CallTTL = 30 // seconds

// Provider verifies and parses CometChat webhooks. It is safe for
// concurrent use.
type Provider struct {
	want [sha256.Size]byte // SHA-256 of "user:password"
	set  bool
}

var _ webhook.Provider = (*Provider)(nil)

// New returns a Provider accepting the Basic credentials configured for
// the webhook in CometChat's dashboard. With both empty every request fails
// Verify.
func New(user, password string) *Provider {
	return &Provider{want: sha256.Sum256([]byte(user + ":" + password)), set: user != "" || password != ""}
}

// Name implements webhook.Provider.
func (p *Provider) Name() string { return Name }

var (
	eventTypes = []string{
		TriggerPush,
		"message_sent", "message_edited", "message_deleted", "message_read_receipt",
		"group_member_added", "group_member_joined", "group_member_left",
		"group_member_kicked", "group_member_banned",
	}
	knownTypes = []string{
		TriggerPush,
		"message_sent", "message_edited", "message_deleted",
		"message_delivery_receipt", "message_read_receipt", "message_reaction_added", "message_reaction_removed",
		"message_delivered_to_all", "message_read_by_all",
		"before_message", "after_message",
		"group_created", "group_updated", "group_deleted",
		"group_member_added", "group_member_joined", "group_member_left",
		"group_member_kicked", "group_member_banned", "group_member_unbanned", "group_member_scope_changed",
		"user_connection_status_change",
		"call_initiated", "call_started", "call_ended", "meeting_started", "meeting_ended",
	}
	// Call actions that end the ringing: the call was not, or no longer
	// needs to be, answered on this device ("ongoing": answered elsewhere).
	callOver = []string{"cancelled", "ended", "unanswered", "rejected", "busy", "ongoing"}
)

// EventTypes implements webhook.Provider.
func (p *Provider) EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventTypes implements webhook.Provider.
func (p *Provider) KnownEventTypes() []string { return slices.Clone(knownTypes) }

// BasicAuth returns the Authorization header value CometChat sends for
// these credentials.
func BasicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// Verify implements webhook.Provider. CometChat sends static Basic
// credentials and no signature or timestamp: a captured request can be
// replayed, and only the pipeline's dedupe by event id stops it. now is
// unused. The comparison is of SHA-256 digests, so it takes the same time
// whatever the credentials' lengths.
func (p *Provider) Verify(h http.Header, _ []byte, _ time.Time) error {
	if !p.set {
		return webhook.Unauthorized("cometchat: no credentials configured")
	}
	auth := h.Get("Authorization")
	scheme, cred, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return webhook.Unauthorized("cometchat: missing Basic credentials")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return webhook.Unauthorized("cometchat: malformed Basic credentials")
	}
	got := sha256.Sum256(raw)
	if subtle.ConstantTimeCompare(got[:], p.want[:]) != 1 {
		return webhook.Unauthorized("cometchat: wrong credentials")
	}
	return nil
}

type envelope struct {
	Trigger string          `json:"trigger"`
	Data    json.RawMessage `json:"data"`
	AppID   string          `json:"appId"`
	Region  string          `json:"region"`
	Webhook string          `json:"webhook"`
}

// Parse implements webhook.Provider. The custom provider sends no event
// id; its ID is derived as "cometchat:<appId>:<key>:<recipient>:<action>",
// where key is the message id (notificationDetails.tag) or, for calls,
// "call:<sessionId>", and action is the call action, or "edited" or
// "deleted" for a message's later versions, else empty. The general
// webhooks' id follows CometChat's documented idempotency key:
// "cometchat:<webhook>:<trigger>:<message id>" (plus the edit time for
// message_edited, the reader for message_read_receipt); group-member
// events use a hash of the body.
//
// A trigger that is neither the custom provider's nor a known general one
// is a *FieldError naming "trigger", as CometChat's own sample answers 400.
func (p *Provider) Parse(_ http.Header, body []byte) (webhook.Event, error) {
	var env envelope
	if err := webhook.Decode(body, "", &env); err != nil {
		return webhook.Event{}, err
	}
	if env.Trigger == "" {
		return webhook.Event{}, webhook.Missing("trigger")
	}
	ev := webhook.Event{Provider: Name, Type: env.Trigger}
	switch {
	case env.Trigger == TriggerPush:
		if env.Webhook != "custom" {
			return webhook.Event{}, &webhook.FieldError{Field: "webhook", Reason: `must be "custom" for ` + TriggerPush}
		}
		return parsePush(ev, &env)
	case !slices.Contains(knownTypes, env.Trigger):
		return webhook.Event{}, &webhook.FieldError{Field: "trigger", Reason: "unknown trigger " + strconv.Quote(env.Trigger)}
	case !slices.Contains(eventTypes, env.Trigger):
		ev.ID = webhook.DerivedID(Name, env.Webhook, env.Trigger, webhook.BodyID(body))
		return ev, nil
	case env.Trigger == "message_read_receipt":
		return parseReadReceipt(ev, &env, body)
	case strings.HasPrefix(env.Trigger, "message_"):
		return parseMessage(ev, &env)
	default:
		ev.ID = webhook.DerivedID(Name, env.Webhook, env.Trigger, webhook.BodyID(body))
		return parseMember(ev, &env)
	}
}

type pushData struct {
	To *struct {
		UID  string `json:"uid"`
		Name string `json:"name"`
	} `json:"to"`
	Details *details `json:"notificationDetails"`
}

type details struct {
	Title             string            `json:"title"`
	Body              string            `json:"body"`
	NotificationTitle string            `json:"notificationTitle"`
	NotificationBody  string            `json:"notificationBody"`
	Sender            string            `json:"sender"`
	SenderName        string            `json:"senderName"`
	SenderAvatar      string            `json:"senderAvatar"`
	Receiver          string            `json:"receiver"`
	ReceiverName      string            `json:"receiverName"`
	ReceiverType      string            `json:"receiverType"`
	Tag               string            `json:"tag"`
	ConversationID    string            `json:"conversationId"`
	Type              string            `json:"type"` // chat, call
	SentAt            webhook.Timestamp `json:"sentAt"`
	Message           *message          `json:"message"`
	Custom            map[string]any    `json:"custom"`
	// Calls.
	CallAction string `json:"callAction"`
	SessionID  string `json:"sessionId"`
	CallType   string `json:"callType"`
}

func parsePush(ev webhook.Event, env *envelope) (webhook.Event, error) {
	var d pushData
	if err := webhook.Decode(env.Data, "data", &d); err != nil {
		return webhook.Event{}, err
	}
	switch {
	case d.To == nil || d.To.UID == "":
		return webhook.Event{}, webhook.Missing("data.to.uid")
	case d.Details == nil:
		return webhook.Event{}, webhook.Missing("data.notificationDetails")
	}
	n := d.Details
	ev.Sender = n.Sender
	ev.SenderName = n.SenderName
	ev.Icon = n.SenderAvatar
	ev.Conversation = n.ConversationID
	if n.ReceiverType == "group" {
		ev.ConversationName = n.ReceiverName
		// CometChat's conversation id of a group is "group_<guid>"; the
		// general webhooks (messages, read receipts, members) name the
		// group by its guid. One conversation, one tag: a read receipt of
		// the group then clears what this path notified.
		ev.Conversation = strings.TrimPrefix(n.ConversationID, "group_")
	}
	ev.Title = first(n.Title, n.NotificationTitle)
	ev.Body = first(n.Body, n.NotificationBody)
	ev.Created = n.SentAt.Time
	ev.Recipients = webhook.Recipients([]string{d.To.UID}, n.Sender)
	ev.Data = map[string]any{}
	if n.Custom != nil {
		ev.Data["custom"] = n.Custom
	}

	var key, action string
	if n.Type == "call" {
		if n.SessionID == "" {
			return webhook.Event{}, webhook.Missing("data.notificationDetails.sessionId")
		}
		// The ringing popup and its retraction share this key, as tag and
		// as RetractID, so the retraction closes it wherever it shows.
		key = "call:" + n.SessionID
		action = n.CallAction
		ev.Tag = key
		ev.Urgency = "high"
		ev.Data["sessionId"] = n.SessionID
		if n.CallType != "" {
			ev.Data["callType"] = n.CallType
		}
		if action != "" {
			ev.Data["callAction"] = action
		}
		switch {
		case action == "" || action == "initiated":
			ev.Kind = webhook.KindNotification
			ev.TTL = CallTTL
		case slices.Contains(callOver, action):
			ev.Kind = webhook.KindRetract
			ev.RetractID = key
		default:
			ev.Kind = webhook.KindIgnore
		}
	} else {
		key = n.Tag
		if key == "" && n.Message != nil {
			key = string(n.Message.ID)
		}
		if key == "" {
			return webhook.Event{}, webhook.Missing("data.notificationDetails.tag")
		}
		ev.Message = key
		ev.Kind = webhook.KindNotification
		// The message object, when included, says whether this push is
		// for an edit or a deletion of the message.
		if m := n.Message; m != nil {
			switch {
			case !m.DeletedAt.IsZero():
				ev.Kind, action = webhook.KindRetract, "deleted"
			case !m.EditedAt.IsZero():
				ev.Kind, action = webhook.KindUpdate, "edited"
			}
			if ev.Text == "" {
				ev.Text = m.Data.Text
			}
		}
	}
	ev.ID = webhook.DerivedID(Name, env.AppID, key, d.To.UID, action)
	if ev.Kind == webhook.KindIgnore || len(ev.Recipients) == 0 {
		// A call action Herald does not act on, or a push to its own sender.
		return webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type}, nil
	}
	if ev.Conversation != "" {
		ev.Data["conversationId"] = ev.Conversation
	}
	if ev.Message != "" {
		ev.Data["messageId"] = ev.Message
	}
	if ev.Sender != "" {
		ev.Data["senderId"] = ev.Sender
	}
	return ev, nil
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// message is CometChat's message object.
type message struct {
	ID             webhook.ID        `json:"id"`
	ConversationID string            `json:"conversationId"`
	Sender         string            `json:"sender"`
	Receiver       string            `json:"receiver"`
	ReceiverType   string            `json:"receiverType"` // user, group
	Type           string            `json:"type"`
	Data           messageData       `json:"data"`
	SentAt         webhook.Timestamp `json:"sentAt"`
	EditedAt       webhook.Timestamp `json:"editedAt"`
	DeletedAt      webhook.Timestamp `json:"deletedAt"`
}

type messageData struct {
	Text     string `json:"text"`
	Entities struct {
		Sender   entity `json:"sender"`
		Receiver entity `json:"receiver"`
	} `json:"entities"`
}

type entity struct {
	Entity struct {
		UID    string `json:"uid"`
		GUID   string `json:"guid"`
		Name   string `json:"name"`
		Avatar string `json:"avatar"`
		Icon   string `json:"icon"`
	} `json:"entity"`
}

func parseMessage(ev webhook.Event, env *envelope) (webhook.Event, error) {
	var d struct {
		Message *message `json:"message"`
	}
	if err := webhook.Decode(env.Data, "data", &d); err != nil {
		return webhook.Event{}, err
	}
	m := d.Message
	switch {
	case m == nil:
		return webhook.Event{}, webhook.Missing("data.message")
	case m.ID == "":
		return webhook.Event{}, webhook.Missing("data.message.id")
	case m.Sender == "" && env.Trigger != "message_deleted":
		return webhook.Event{}, webhook.Missing("data.message.sender")
	case m.Receiver == "":
		return webhook.Event{}, webhook.Missing("data.message.receiver")
	case m.ReceiverType != "user" && m.ReceiverType != "group":
		return webhook.Event{}, &webhook.FieldError{Field: "data.message.receiverType", Reason: `must be "user" or "group"`}
	}
	ev.ID = webhook.DerivedID(Name, env.Webhook, env.Trigger, string(m.ID))
	ev.Created = m.SentAt.Time
	switch env.Trigger {
	case "message_sent":
		ev.Kind = webhook.KindMessage
	case "message_edited":
		ev.Kind = webhook.KindUpdate
		ev.ID = webhook.DerivedID(ev.ID, strconv.FormatInt(m.EditedAt.Unix(), 10))
		if !m.EditedAt.IsZero() {
			ev.Created = m.EditedAt.Time
		}
	default:
		ev.Kind = webhook.KindRetract
		if !m.DeletedAt.IsZero() {
			ev.Created = m.DeletedAt.Time
		}
	}
	ev.Message = string(m.ID)
	ev.Sender = m.Sender
	ev.SenderName = m.Data.Entities.Sender.Entity.Name
	ev.Icon = m.Data.Entities.Sender.Entity.Avatar
	ev.Text = m.Data.Text
	if m.ReceiverType == "user" {
		ev.Conversation = m.ConversationID
		ev.Recipients = webhook.Recipients([]string{m.Receiver}, m.Sender)
		if len(ev.Recipients) == 0 {
			return webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type}, nil // a note to self
		}
	} else {
		// Recipients nil: the group's members, from the membership store.
		ev.Conversation = m.Receiver
		ev.ConversationName = m.Data.Entities.Receiver.Entity.Name
	}
	if ev.Conversation == "" {
		ev.Conversation = m.Receiver
	}
	ev.Data = map[string]any{"conversationId": ev.Conversation, "messageId": ev.Message}
	if ev.Sender != "" {
		ev.Data["senderId"] = ev.Sender
	}
	return ev, nil
}

// receipt is a read (or delivery) receipt's data. Its sender is the user
// who read; its receiver is, in a one-to-one chat, the uid of the message's
// sender (the other party), in a group the group's guid.
type receipt struct {
	Sender        string `json:"sender"`
	Receiver      string `json:"receiver"`
	ReceiverType  string `json:"receiverType"`
	MessageSender string `json:"messageSender"`
	Body          *struct {
		MessageID webhook.ID `json:"messageId"`
		User      *struct {
			UID string `json:"uid"`
		} `json:"user"`
		Timestamp webhook.Timestamp `json:"timestamp"`
	} `json:"body"`
	// The legacy webhooks' receipt: a message id and nothing of who read
	// it or where.
	MessageID webhook.ID `json:"messageId"`
}

// parseReadReceipt reads message_read_receipt: the receipt's sender read
// the conversation up to the message (CometChat marks every message
// before it read too). A legacy webhook's receipt names no reader and no
// conversation, so there is nothing to mark: it is ignored.
func parseReadReceipt(ev webhook.Event, env *envelope, body []byte) (webhook.Event, error) {
	var d receipt
	if err := webhook.Decode(env.Data, "data", &d); err != nil {
		return webhook.Event{}, err
	}
	if d.Body == nil && d.Sender == "" && d.MessageID != "" {
		ev.ID = webhook.DerivedID(Name, env.Webhook, env.Trigger, webhook.BodyID(body))
		return ev, nil
	}
	reader := d.Sender
	if reader == "" && d.Body != nil && d.Body.User != nil {
		reader = d.Body.User.UID
	}
	switch {
	case reader == "":
		return webhook.Event{}, webhook.Missing("data.sender")
	case d.Body == nil || d.Body.MessageID == "":
		return webhook.Event{}, webhook.Missing("data.body.messageId")
	}
	var conv string
	switch d.ReceiverType {
	case "user":
		other := first(d.Receiver, d.MessageSender)
		if other == "" {
			return webhook.Event{}, webhook.Missing("data.receiver")
		}
		conv = userConversation(reader, other)
	case "group":
		if d.Receiver == "" {
			return webhook.Event{}, webhook.Missing("data.receiver")
		}
		conv = d.Receiver // as message_sent names a group's conversation
	default:
		return webhook.Event{}, &webhook.FieldError{Field: "data.receiverType", Reason: `must be "user" or "group"`}
	}
	ev.Kind = webhook.KindRead
	ev.ID = webhook.DerivedID(Name, env.Webhook, env.Trigger, string(d.Body.MessageID), reader)
	ev.Conversation = conv
	ev.Message = string(d.Body.MessageID)
	ev.Recipients = []string{reader}
	ev.Created = d.Body.Timestamp.Time
	ev.Data = map[string]any{"conversationId": conv, "messageId": ev.Message}
	return ev, nil
}

// userConversation is the conversationId CometChat gives a one-to-one
// chat, which message_sent events carry and the receipt lacks: the two
// uids, the lesser first, joined by "_user_". Every example in CometChat's
// docs is of this form whoever sent the message (cometchat-uid-4_user_
// cometchat-uid-5 for a message from uid-5 to uid-4).
func userConversation(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "_user_" + b
}

// memberRef is a user as a group-member event names it: a uid string or
// an object with uid.
type memberRef string

func (r *memberRef) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			UID string `json:"uid"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = memberRef(o.UID)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*r = memberRef(s)
	return nil
}

// parseMember reads group-member triggers. CometChat's reference shows
// them less fully than messages; Herald reads the group from data.group.guid
// (or data.guid) and the users from data.members (uids or user objects),
// data.member or data.user. A payload without both is ignored, not refused.
func parseMember(ev webhook.Event, env *envelope) (webhook.Event, error) {
	var d struct {
		GUID  string `json:"guid"`
		Group *struct {
			GUID string `json:"guid"`
			Name string `json:"name"`
		} `json:"group"`
		Members []memberRef `json:"members"`
		Member  *memberRef  `json:"member"`
		User    *memberRef  `json:"user"`
	}
	if err := webhook.Decode(env.Data, "data", &d); err != nil {
		return webhook.Event{}, err
	}
	guid := d.GUID
	if d.Group != nil {
		guid = first(d.Group.GUID, guid)
		ev.ConversationName = d.Group.Name
	}
	users := make([]string, 0, len(d.Members)+2)
	for _, m := range d.Members {
		users = append(users, string(m))
	}
	for _, m := range []*memberRef{d.Member, d.User} {
		if m != nil {
			users = append(users, string(*m))
		}
	}
	users = webhook.Recipients(users)
	if guid == "" || len(users) == 0 {
		return webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type}, nil
	}
	ev.Kind = webhook.KindMembership
	ev.Conversation = guid
	ev.Members = &notification.Membership{Conversation: guid}
	switch env.Trigger {
	case "group_member_added", "group_member_joined":
		ev.Members.Add = users
	default:
		ev.Members.Remove = users
	}
	return ev, nil
}
