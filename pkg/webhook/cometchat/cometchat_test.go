package cometchat

import (
	"encoding/base64"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
	"github.com/heraldhq/herald/pkg/webhook/webhooktest"
)

const (
	user     = "herald"
	password = "s3cret:with colon"
)

func header(auth string) http.Header {
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	return h
}

func TestVerify(t *testing.T) {
	body := webhooktest.Fixture(t, "push_chat.json")
	tests := []struct {
		name string
		p    *Provider
		auth string
		ok   bool
	}{
		{"right credentials verify", New(user, password), BasicAuth(user, password), true},
		{"scheme is case-insensitive", New(user, password), "basic " + strings.TrimPrefix(BasicAuth(user, password), "Basic "), true},
		{"wrong password", New(user, password), BasicAuth(user, "guess"), false},
		{"wrong user", New(user, password), BasicAuth("root", password), false},
		{"password as a prefix", New(user, password), BasicAuth(user, password[:3]), false},
		{"missing header", New(user, password), "", false},
		{"bearer instead of basic", New(user, password), "Bearer " + base64.StdEncoding.EncodeToString([]byte(user+":"+password)), false},
		{"not base64", New(user, password), "Basic %%%", false},
		{"no credentials configured", New("", ""), BasicAuth("", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Verify(header(tt.auth), body, time.Now())
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, webhook.ErrUnauthorized) {
				t.Fatalf("Verify = %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	if got := BasicAuth("Aladdin", "open sesame"); got != "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==" {
		t.Fatalf("BasicAuth = %q", got) // RFC 7617's example
	}
}

func TestParse(t *testing.T) {
	const (
		conv1  = "cometchat-uid-1_user_cometchat-uid-2"
		avatar = "https://assets.cometchat.io/sampleapp/v2/users/cometchat-uid-1.webp"
		call   = "call:v1.us.app123.1741847600abcdef"
	)
	tests := []struct {
		fixture string
		want    webhook.Event
	}{
		{"push_chat.json", webhook.Event{
			Provider: Name, ID: "cometchat:app123:123:cometchat-uid-2:", Type: TriggerPush, Kind: webhook.KindNotification,
			Conversation: conv1, Message: "123", Sender: "cometchat-uid-1", SenderName: "Andrew Joseph", Icon: avatar,
			Recipients: []string{"cometchat-uid-2"}, Title: "Andrew Joseph", Body: "Hello!",
			Data: map[string]any{"conversationId": conv1, "messageId": "123", "senderId": "cometchat-uid-1",
				"custom": map[string]any{"orderId": "o-77"}},
			Created: time.UnixMilli(1741847453000).UTC(),
		}},
		{"push_group_chat_edited.json", webhook.Event{
			Provider: Name, ID: "cometchat:app123:456:cometchat-uid-3:edited", Type: TriggerPush, Kind: webhook.KindUpdate,
			Conversation: "hiking-club", ConversationName: "Hiking club", Message: "456",
			Sender: "cometchat-uid-1", SenderName: "Andrew Joseph", Text: "Meet at 8, not 7",
			Recipients: []string{"cometchat-uid-3"}, Title: "Hiking club", Body: "Andrew Joseph: Meet at 8, not 7",
			Data:    map[string]any{"conversationId": "hiking-club", "messageId": "456", "senderId": "cometchat-uid-1"},
			Created: time.UnixMilli(1741847500000).UTC(),
		}},
		{"push_call_initiated.json", webhook.Event{
			Provider: Name, ID: "cometchat:app123:" + call + ":cometchat-uid-2:initiated", Type: TriggerPush, Kind: webhook.KindNotification,
			Conversation: conv1, Sender: "cometchat-uid-1", SenderName: "Andrew Joseph", Icon: avatar,
			Recipients: []string{"cometchat-uid-2"}, Title: "Andrew Joseph", Body: "Incoming video call",
			Tag: call, Urgency: "high", TTL: CallTTL,
			Data: map[string]any{"conversationId": conv1, "senderId": "cometchat-uid-1",
				"sessionId": "v1.us.app123.1741847600abcdef", "callType": "video", "callAction": "initiated"},
			Created: time.UnixMilli(1741847600000).UTC(),
		}},
		{"push_call_cancelled.json", webhook.Event{
			Provider: Name, ID: "cometchat:app123:" + call + ":cometchat-uid-2:cancelled", Type: TriggerPush, Kind: webhook.KindRetract,
			Conversation: conv1, Sender: "cometchat-uid-1", SenderName: "Andrew Joseph", Icon: avatar,
			Recipients: []string{"cometchat-uid-2"}, Title: "Andrew Joseph", Body: "Missed video call",
			Tag: call, Urgency: "high", RetractID: call,
			Data: map[string]any{"conversationId": conv1, "senderId": "cometchat-uid-1",
				"sessionId": "v1.us.app123.1741847600abcdef", "callType": "video", "callAction": "cancelled"},
			Created: time.UnixMilli(1741847600000).UTC(),
		}},
		{"message_sent_user.json", webhook.Event{
			Provider: Name, ID: "cometchat:webhook-1:message_sent:1", Type: "message_sent", Kind: webhook.KindMessage,
			Conversation: conv1, Message: "1", Sender: "cometchat-uid-1", SenderName: "Andrew Joseph", Icon: avatar,
			Text: "hi", Recipients: []string{"cometchat-uid-2"},
			Data:    map[string]any{"conversationId": conv1, "messageId": "1", "senderId": "cometchat-uid-1"},
			Created: time.Unix(1696934912, 0).UTC(),
		}},
		{"message_sent_group.json", webhook.Event{
			Provider: Name, ID: "cometchat:webhook-1:message_sent:2", Type: "message_sent", Kind: webhook.KindMessage,
			Conversation: "hiking-club", ConversationName: "Hiking club", Message: "2",
			Sender: "cometchat-uid-1", SenderName: "Andrew Joseph", Text: "Who is in for Saturday?",
			Data:    map[string]any{"conversationId": "hiking-club", "messageId": "2", "senderId": "cometchat-uid-1"},
			Created: time.Unix(1696935000, 0).UTC(),
		}},
		{"message_deleted.json", webhook.Event{
			Provider: Name, ID: "cometchat:webhook-1:message_deleted:2", Type: "message_deleted", Kind: webhook.KindRetract,
			Conversation: "hiking-club", ConversationName: "Hiking club", Message: "2", Sender: "cometchat-uid-1",
			Data:    map[string]any{"conversationId": "hiking-club", "messageId": "2", "senderId": "cometchat-uid-1"},
			Created: time.Unix(1696935100, 0).UTC(),
		}},
		{"group_member_kicked.json", webhook.Event{
			Provider: Name, Type: "group_member_kicked", Kind: webhook.KindMembership,
			Conversation: "hiking-club", ConversationName: "Hiking club",
			Members: &notification.Membership{Conversation: "hiking-club", Remove: []string{"cometchat-uid-5"}},
		}},
		// message_read_receipt as the general webhooks' events reference
		// shows it: the reader is data.sender (and data.body.user), the
		// receiver the original message's sender, or the group.
		{"message_read_receipt.json", webhook.Event{
			Provider: Name, ID: "cometchat:webhook-1:message_read_receipt:1:cometchat-uid-2", Type: "message_read_receipt", Kind: webhook.KindRead,
			Conversation: conv1, Message: "1", Recipients: []string{"cometchat-uid-2"},
			Data:    map[string]any{"conversationId": conv1, "messageId": "1"},
			Created: time.Unix(1696934950, 0).UTC(),
		}},
		{"message_read_receipt_group.json", webhook.Event{
			Provider: Name, ID: "cometchat:webhook-1:message_read_receipt:2:cometchat-uid-3", Type: "message_read_receipt", Kind: webhook.KindRead,
			Conversation: "hiking-club", Message: "2", Recipients: []string{"cometchat-uid-3"},
			Data:    map[string]any{"conversationId": "hiking-club", "messageId": "2"},
			Created: time.Unix(1696935050, 0).UTC(),
		}},
		// The legacy webhooks' receipt (legacy events reference) names no
		// reader and no conversation.
		{"message_read_receipt_legacy.json", webhook.Event{Provider: Name, Type: "message_read_receipt"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			body := webhooktest.Fixture(t, tt.fixture)
			got, err := New(user, password).Parse(nil, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.want.ID == "" {
				tt.want.ID = "cometchat:webhook-1:" + tt.want.Type + ":" + webhook.BodyID(body)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
			if err := webhook.CheckEvent(got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCallRetractionClosesTheRingingPopup(t *testing.T) {
	p := New(user, password)
	ring, err := p.Parse(nil, webhooktest.Fixture(t, "push_call_initiated.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"cancelled", "ended", "unanswered", "rejected"} {
		body := webhooktest.Edit(t, webhooktest.Fixture(t, "push_call_initiated.json"), "data.notificationDetails.callAction", action)
		ev, err := p.Parse(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind != webhook.KindRetract || ev.RetractID != ring.Tag || ev.ID == ring.ID {
			t.Errorf("%s: kind %s, retract %q, id %q; ringing tag %q, id %q", action, ev.Kind, ev.RetractID, ev.ID, ring.Tag, ring.ID)
		}
	}
	body := webhooktest.Edit(t, webhooktest.Fixture(t, "push_call_initiated.json"), "data.notificationDetails.callAction", "transferred")
	if ev, err := p.Parse(nil, body); err != nil || ev.Kind != webhook.KindIgnore {
		t.Errorf("unknown call action: %+v, %v", ev, err)
	}
}

func TestPushToItsSenderIsIgnored(t *testing.T) {
	body := webhooktest.Edit(t, webhooktest.Fixture(t, "push_chat.json"), "data.to.uid", "cometchat-uid-1")
	ev, err := New(user, password).Parse(nil, body)
	if err != nil || ev.Kind != webhook.KindIgnore {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestPushReadsSampleCodeFieldNames(t *testing.T) {
	body := webhooktest.Edit(t, webhooktest.Fixture(t, "push_chat.json"), "data.notificationDetails.title", nil)
	body = webhooktest.Edit(t, body, "data.notificationDetails.body", nil)
	body = webhooktest.Edit(t, body, "data.notificationDetails.notificationTitle", "T")
	body = webhooktest.Edit(t, body, "data.notificationDetails.notificationBody", "B")
	ev, err := New(user, password).Parse(nil, body)
	if err != nil || ev.Title != "T" || ev.Body != "B" {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		fixture, path string
		value         any
		field         string
	}{
		{"push_chat.json", "trigger", nil, "trigger"},
		{"push_chat.json", "trigger", "push-notification-sent", "trigger"},
		{"push_chat.json", "webhook", nil, "webhook"},
		{"push_chat.json", "webhook", "fcm", "webhook"},
		{"push_chat.json", "data", nil, "data"},
		{"push_chat.json", "data.to", nil, "data.to.uid"},
		{"push_chat.json", "data.to.uid", nil, "data.to.uid"},
		{"push_chat.json", "data.notificationDetails", nil, "data.notificationDetails"},
		{"push_chat.json", "data.notificationDetails.tag", nil, "data.notificationDetails.tag"},
		{"push_chat.json", "data.notificationDetails.title", 1, "data.notificationDetails.title"},
		{"push_call_initiated.json", "data.notificationDetails.sessionId", nil, "data.notificationDetails.sessionId"},
		{"message_sent_user.json", "data.message", nil, "data.message"},
		{"message_sent_user.json", "data.message.id", nil, "data.message.id"},
		{"message_sent_user.json", "data.message.sender", nil, "data.message.sender"},
		{"message_sent_user.json", "data.message.receiver", nil, "data.message.receiver"},
		{"message_sent_user.json", "data.message.receiverType", "channel", "data.message.receiverType"},
		{"message_sent_user.json", "data.message.id", true, "data.message.id"},
		{"message_deleted.json", "data.message.id", nil, "data.message.id"},
		{"message_read_receipt.json", "data", nil, "data"},
		{"message_read_receipt.json", "data.body", nil, "data.body.messageId"},
		{"message_read_receipt.json", "data.body.messageId", nil, "data.body.messageId"},
		{"message_read_receipt.json", "data.receiverType", "channel", "data.receiverType"},
		{"message_read_receipt.json", "data.sender", 2, "data.sender"},
		{"message_read_receipt_group.json", "data.receiver", nil, "data.receiver"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.path, func(t *testing.T) {
			_, err := New(user, password).Parse(nil, webhooktest.Edit(t, webhooktest.Fixture(t, tt.fixture), tt.path, tt.value))
			var fe *webhook.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Parse error = %v, want a FieldError for %q", err, tt.field)
			}
		})
	}
}

func TestParseReadReceipt(t *testing.T) {
	p := New(user, password)
	parse := func(t *testing.T, body []byte) webhook.Event {
		t.Helper()
		ev, err := p.Parse(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		if err := webhook.CheckEvent(ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	body := webhooktest.Fixture(t, "message_read_receipt.json")
	read := parse(t, body)

	t.Run("a one-to-one read is of message_sent's conversation", func(t *testing.T) {
		// The reader received the message: its notification was tagged
		// with the conversation message_sent named.
		sent := parse(t, webhooktest.Fixture(t, "message_sent_user.json"))
		if read.Conversation != sent.Conversation || !reflect.DeepEqual(read.Recipients, sent.Recipients) {
			t.Fatalf("read of %q by %v; message in %q to %v", read.Conversation, read.Recipients, sent.Conversation, sent.Recipients)
		}
		// Whichever uid sorts first, the key is the same.
		b := webhooktest.Edit(t, body, "data.sender", "cometchat-uid-0")
		b = webhooktest.Edit(t, b, "data.body.user.uid", "cometchat-uid-0")
		if got := parse(t, b); got.Conversation != "cometchat-uid-0_user_cometchat-uid-1" {
			t.Fatalf("reader sorting first: %q", got.Conversation)
		}
	})
	t.Run("a group read is of message_sent's conversation", func(t *testing.T) {
		sent := parse(t, webhooktest.Fixture(t, "message_sent_group.json"))
		if got := parse(t, webhooktest.Fixture(t, "message_read_receipt_group.json")); got.Conversation != sent.Conversation {
			t.Fatalf("read of %q, message in %q", got.Conversation, sent.Conversation)
		}
	})
	t.Run("the id differs per reader and per message", func(t *testing.T) {
		other := parse(t, webhooktest.Edit(t, body, "data.sender", "cometchat-uid-7"))
		later := parse(t, webhooktest.Edit(t, body, "data.body.messageId", "2"))
		if other.ID == read.ID || later.ID == read.ID || parse(t, body).ID != read.ID {
			t.Fatalf("ids %q, %q; first %q", other.ID, later.ID, read.ID)
		}
	})
	t.Run("the reader is body.user without data.sender", func(t *testing.T) {
		got := parse(t, webhooktest.Edit(t, body, "data.sender", nil))
		if !reflect.DeepEqual(got.Recipients, []string{"cometchat-uid-2"}) {
			t.Fatalf("recipients %v", got.Recipients)
		}
	})
	t.Run("the other party is messageSender without data.receiver", func(t *testing.T) {
		if got := parse(t, webhooktest.Edit(t, body, "data.receiver", nil)); got.Conversation != read.Conversation {
			t.Fatalf("conversation %q, want %q", got.Conversation, read.Conversation)
		}
	})
	for _, tt := range []struct {
		name   string
		remove []string
		field  string
	}{
		{"no reader", []string{"data.sender", "data.body.user"}, "data.sender"},
		{"no other party", []string{"data.receiver", "data.messageSender"}, "data.receiver"},
	} {
		t.Run(tt.name+" is a missing field", func(t *testing.T) {
			b := body
			for _, path := range tt.remove {
				b = webhooktest.Edit(t, b, path, nil)
			}
			var fe *webhook.FieldError
			if _, err := p.Parse(nil, b); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Parse error = %v, want a FieldError for %q", err, tt.field)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `{"trigger":"message_sent","data":"x"}`} {
		_, err := New(user, password).Parse(nil, []byte(body))
		var fe *webhook.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) error = %v, want a FieldError", body, err)
		}
	}
}

func TestKnownButUnhandledTriggerIsIgnored(t *testing.T) {
	// message_read_by_all names no reader (its sender is app_system): the
	// readers' own message_read_receipt events do the marking.
	for _, trigger := range []string{"user_connection_status_change", "message_read_by_all", "message_delivered_to_all"} {
		ev, err := New(user, password).Parse(nil, []byte(`{"trigger":"`+trigger+`","data":{},"webhook":"w"}`))
		if err != nil || ev.Kind != webhook.KindIgnore || ev.Type != trigger || ev.ID == "" {
			t.Fatalf("Parse = %+v, %v", ev, err)
		}
	}
}

func TestEventTypesAreKnown(t *testing.T) {
	webhooktest.EventTypesAreKnown(t, New(user, password))
}

func FuzzParse(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b)
	}
	p := New(user, password)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := p.Parse(nil, body)
		if !webhooktest.CheckParsed(t, Name, ev, err) {
			return
		}
		if ev.Type == TriggerPush && ev.Kind != webhook.KindIgnore && len(ev.Recipients) != 1 {
			t.Fatalf("custom provider push to %v, want one recipient", ev.Recipients)
		}
		if ev.Kind == webhook.KindRetract && ev.RetractID != "" && ev.RetractID != ev.Tag {
			t.Fatalf("retract id %q differs from tag %q", ev.RetractID, ev.Tag)
		}
	})
}

func FuzzVerify(f *testing.F) {
	f.Add(user, password, "")
	f.Add("", "p", "Basic Og==")
	f.Add("u", "", "Basic dTo=")
	f.Fuzz(func(t *testing.T, u, pw, junk string) {
		p := New(u, pw)
		err := p.Verify(header(BasicAuth(u, pw)), nil, time.Time{})
		if (u != "" || pw != "") && err != nil {
			t.Fatalf("own credentials: %v", err)
		}
		if u == "" && pw == "" && !errors.Is(err, webhook.ErrUnauthorized) {
			t.Fatalf("unconfigured provider: %v", err)
		}
		err = p.Verify(header(junk), nil, time.Time{})
		if err != nil && !errors.Is(err, webhook.ErrUnauthorized) {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil {
			_, cred, _ := strings.Cut(junk, " ")
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
			if string(raw) != u+":"+pw {
				t.Fatalf("junk %q accepted", junk)
			}
		}
	})
}
