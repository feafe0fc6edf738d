package talkjs

import (
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

const secret = "sk_test_talkjs"

var now = time.UnixMilli(1659016183145)

func headers(sig, ts string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("X-TalkJS-Signature", sig)
	}
	if ts != "" {
		h.Set("X-TalkJS-Timestamp", ts)
	}
	return h
}

func TestVerify(t *testing.T) {
	body := webhooktest.Fixture(t, "message_sent.json")
	sig, ts := Sign(secret, now, body)
	wrongSig, _ := Sign("another secret", now, body)
	staleSig, staleTS := Sign(secret, now.Add(-webhook.MaxSkew-time.Second), body)
	futureSig, futureTS := Sign(secret, now.Add(webhook.MaxSkew+time.Second), body)
	edgeSig, edgeTS := Sign(secret, now.Add(-webhook.MaxSkew), body)
	tests := []struct {
		name   string
		p      *Provider
		h      http.Header
		body   []byte
		target error
	}{
		{"good signature verifies", New(secret), headers(sig, ts), body, nil},
		{"lower-case hex verifies", New(secret), headers(strings.ToLower(sig), ts), body, nil},
		{"timestamp at the window's edge verifies", New(secret), headers(edgeSig, edgeTS), body, nil},
		{"signature under another secret", New(secret), headers(wrongSig, ts), body, webhook.ErrUnauthorized},
		{"missing signature", New(secret), headers("", ts), body, webhook.ErrUnauthorized},
		{"missing timestamp", New(secret), headers(sig, ""), body, webhook.ErrUnauthorized},
		{"timestamp not a number", New(secret), headers(sig, "yesterday"), body, webhook.ErrUnauthorized},
		{"timestamp differs from the signed one", New(secret), headers(sig, ts+"1"), body, webhook.ErrUnauthorized},
		{"signature not hex", New(secret), headers("zz"+sig[2:], ts), body, webhook.ErrUnauthorized},
		{"body changed", New(secret), headers(sig, ts), append([]byte(" "), body...), webhook.ErrUnauthorized},
		{"no secret configured", New(""), headers(sig, ts), body, webhook.ErrUnauthorized},
		{"stale timestamp", New(secret), headers(staleSig, staleTS), body, webhook.ErrStale},
		{"timestamp in the future", New(secret), headers(futureSig, futureTS), body, webhook.ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Verify(tt.h, tt.body, now)
			if tt.target == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.target) {
				t.Fatalf("Verify = %v, want %v", err, tt.target)
			}
		})
	}
}

func TestSignIsUpperCaseHexOfTimestampDotBody(t *testing.T) {
	sig, ts := Sign("k", time.UnixMilli(1000), []byte("{}"))
	// HMAC-SHA256("k", "1000.{}"), computed with openssl.
	const want = "D5690A3867C04543C5FB93338AF07F30D5928FFE44304BE02FB636F6B46B42C9"
	if ts != "1000" || sig != want {
		t.Fatalf("Sign = %q, %q; want %q, %q", sig, ts, want, "1000")
	}
}

func data(conv, msg, sender string) map[string]any {
	d := map[string]any{"conversationId": conv, "messageId": msg}
	if sender != "" {
		d["senderId"] = sender
	}
	return d
}

func TestParse(t *testing.T) {
	tests := []struct {
		fixture string
		want    webhook.Event
	}{
		{"message_sent.json", webhook.Event{
			Provider: Name, ID: "evt_ALx5mpzPpFh1e1WjhI", Type: "message.sent", Kind: webhook.KindMessage,
			Conversation: "c1", ConversationName: "Trip planning", Message: "msg_1",
			Sender: "bob", SenderName: "Bob", Text: "Hello!", Icon: "https://example.com/bob.png",
			Recipients: []string{"alice", "erin"},
			Exclude:    []string{"carol", "dave"},
			Data:       data("c1", "msg_1", "bob"),
			Members:    &notification.Membership{Conversation: "c1", Set: []string{"alice", "bob", "carol", "dave", "erin"}},
			Created:    time.UnixMilli(1659016183145).UTC(),
		}},
		{"message_updated.json", webhook.Event{
			Provider: Name, ID: "evt_upd1", Type: "message.updated", Kind: webhook.KindUpdate,
			Conversation: "c1", ConversationName: "Trip planning", Message: "msg_1",
			Sender: "bob", SenderName: "Bob", Text: "Hello, all!",
			Recipients: []string{"alice"},
			Exclude:    []string{"carol"},
			Data:       data("c1", "msg_1", "bob"),
			Members:    &notification.Membership{Conversation: "c1", Set: []string{"alice", "bob", "carol"}},
			Created:    time.UnixMilli(1659016283145).UTC(),
		}},
		{"message_deleted.json", webhook.Event{
			Provider: Name, ID: "evt_del1", Type: "message.deleted", Kind: webhook.KindRetract,
			Conversation: "c1", ConversationName: "Trip planning", Message: "msg_1",
			Sender: "bob", SenderName: "Bob", Text: "Hello, all!",
			Recipients: []string{"alice", "carol"},
			Data:       data("c1", "msg_1", "bob"),
			Members:    &notification.Membership{Conversation: "c1", Set: []string{"alice", "bob", "carol"}},
			Created:    time.UnixMilli(1659016383145).UTC(),
		}},
		{"notification_triggered.json", webhook.Event{
			Provider: Name, ID: "evt_ntf1", Type: "notification.triggered", Kind: webhook.KindNotification,
			Conversation: "c1", ConversationName: "Trip planning", Message: "msg_3",
			Sender: "bob", SenderName: "Bob", Text: "Are you there?\nPing", Icon: "https://example.com/bob.png",
			Recipients: []string{"alice"},
			Data:       data("c1", "msg_3", "bob"),
			Created:    time.UnixMilli(1659016483145).UTC(),
		}},
		{"conversation_deleted.json", webhook.Event{
			Provider: Name, ID: "evt_cdel1", Type: "conversation.deleted", Kind: webhook.KindMembership,
			Conversation: "c1",
			Members:      &notification.Membership{Conversation: "c1", Deleted: true},
			Created:      time.UnixMilli(1659016583145).UTC(),
		}},
		// message.read: the envelope of every event, with the data the
		// Reference/Webhooks page and TalkJS's own webhook example read:
		// the conversation, the message (readBy lists its readers) and the
		// recipient, the member who read it.
		{"message_read.json", webhook.Event{
			Provider: Name, ID: "evt_read1", Type: "message.read", Kind: webhook.KindRead,
			Conversation: "c1", Message: "msg_1", Recipients: []string{"alice"},
			Data:    data("c1", "msg_1", ""),
			Created: time.UnixMilli(1659016213145).UTC(),
		}},
		{"user_created.json", webhook.Event{
			Provider: Name, ID: "evt_usr1", Type: "user.created", Kind: webhook.KindIgnore,
			Created: time.UnixMilli(1659016683145).UTC(),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := New(secret).Parse(nil, webhooktest.Fixture(t, tt.fixture))
			if err != nil {
				t.Fatalf("Parse: %v", err)
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

func TestParseSystemMessageHasNoSender(t *testing.T) {
	body := webhooktest.Edit(t, webhooktest.Fixture(t, "message_sent.json"), "data.sender", nil)
	body = webhooktest.Edit(t, body, "data.message.senderId", nil)
	ev, err := New(secret).Parse(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Sender != "" || !reflect.DeepEqual(ev.Recipients, []string{"alice", "bob", "erin"}) {
		t.Fatalf("sender %q, recipients %v", ev.Sender, ev.Recipients)
	}
}

func TestParseNotificationToTheSenderIsIgnored(t *testing.T) {
	body := webhooktest.Edit(t, webhooktest.Fixture(t, "notification_triggered.json"), "data.recipient.id", "bob")
	ev, err := New(secret).Parse(nil, body)
	if err != nil || ev.Kind != webhook.KindIgnore || ev.ID != "evt_ntf1" {
		t.Fatalf("Parse = %+v, %v; want ignored", ev, err)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		fixture, path string
		value         any // nil removes the field
		field         string
	}{
		{"message_sent.json", "id", nil, "id"},
		{"message_sent.json", "type", nil, "type"},
		{"message_sent.json", "data", nil, "data"},
		{"message_sent.json", "data.conversation", nil, "data.conversation"},
		{"message_sent.json", "data.conversation.id", nil, "data.conversation.id"},
		{"message_sent.json", "data.conversation.participants", nil, "data.conversation.participants"},
		{"message_sent.json", "data.message", nil, "data.message"},
		{"message_sent.json", "data.message.id", nil, "data.message.id"},
		{"message_sent.json", "data.message.text", 42, "data.message.text"},
		{"message_sent.json", "data.conversation.participants", []any{"alice"}, "data.conversation.participants"},
		{"message_updated.json", "data.message.id", nil, "data.message.id"},
		{"message_deleted.json", "data.conversation.id", nil, "data.conversation.id"},
		{"notification_triggered.json", "data.recipient", nil, "data.recipient.id"},
		{"notification_triggered.json", "data.conversation", nil, "data.conversation.id"},
		{"notification_triggered.json", "data.messages", nil, "data.messages"},
		{"notification_triggered.json", "data.messages", []any{}, "data.messages"},
		{"conversation_deleted.json", "data.conversation", nil, "data.conversation.id"},
		{"message_read.json", "id", nil, "id"},
		{"message_read.json", "data", nil, "data"},
		{"message_read.json", "data.recipient", nil, "data.recipient.id"},
		{"message_read.json", "data.recipient.id", nil, "data.recipient.id"},
		{"message_read.json", "data.recipient.id", "", "data.recipient.id"},
		{"message_read.json", "data.message", nil, "data.message.id"},
		{"message_read.json", "data.message.id", nil, "data.message.id"},
		{"message_read.json", "data.recipient", "alice", "data.recipient"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.path, func(t *testing.T) {
			_, err := New(secret).Parse(nil, webhooktest.Edit(t, webhooktest.Fixture(t, tt.fixture), tt.path, tt.value))
			var fe *webhook.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Parse error = %v, want a FieldError for %q", err, tt.field)
			}
		})
	}
}

func TestParseRead(t *testing.T) {
	p := New(secret)
	body := webhooktest.Fixture(t, "message_read.json")
	read, err := p.Parse(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := p.Parse(nil, webhooktest.Fixture(t, "message_sent.json"))
	if err != nil {
		t.Fatal(err)
	}
	if read.Conversation != sent.Conversation || read.Message != sent.Message {
		t.Fatalf("read of %q/%q, message sent in %q/%q", read.Conversation, read.Message, sent.Conversation, sent.Message)
	}
	// Without the conversation object, the message's conversationId names
	// the same conversation; without either there is nothing to mark.
	noConv := webhooktest.Edit(t, body, "data.conversation", nil)
	if ev, err := p.Parse(nil, noConv); err != nil || ev.Conversation != "c1" || ev.Kind != webhook.KindRead {
		t.Fatalf("from message.conversationId: %+v, %v", ev, err)
	}
	var fe *webhook.FieldError
	if _, err := p.Parse(nil, webhooktest.Edit(t, noConv, "data.message.conversationId", nil)); !errors.As(err, &fe) || fe.Field != "data.conversation.id" {
		t.Fatalf("no conversation: %v", err)
	}
	if _, err := p.Parse(nil, webhooktest.Edit(t, body, "data.conversation.id", "")); err != nil {
		t.Fatalf("empty conversation.id with message.conversationId: %v", err)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `"message.sent"`, `{"id":"e","type":"message.sent","data":"x"}`} {
		_, err := New(secret).Parse(nil, []byte(body))
		var fe *webhook.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) error = %v, want a FieldError", body, err)
		}
	}
}

func TestUnknownTypeIsIgnored(t *testing.T) {
	ev, err := New(secret).Parse(nil, []byte(`{"id":"evt_9","type":"message.reacted","data":{"whatever":1}}`))
	if err != nil || ev.Kind != webhook.KindIgnore || ev.ID != "evt_9" || ev.Type != "message.reacted" {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestEventTypesAreKnown(t *testing.T) {
	p := New(secret)
	known := p.KnownEventTypes()
	for _, typ := range p.EventTypes() {
		if !contains(known, typ) {
			t.Errorf("%s acted on but not known", typ)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func FuzzParse(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b)
	}
	p := New(secret)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := p.Parse(nil, body)
		if !webhooktest.CheckParsed(t, Name, ev, err) {
			return
		}
		for _, x := range ev.Exclude {
			if x == ev.Sender && x != "" {
				t.Fatalf("sender %q excluded rather than dropped", x)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b, int64(0), "")
		f.Add(b, int64(webhook.MaxSkew/time.Millisecond)+1, "0A")
	}
	p := New(secret)
	f.Fuzz(func(t *testing.T, body []byte, offsetMS int64, junk string) {
		offsetMS %= int64(24 * time.Hour / time.Millisecond)
		sig, ts := Sign(secret, now.Add(time.Duration(offsetMS)*time.Millisecond), body)
		err := p.Verify(headers(sig, ts), body, now)
		inWindow := offsetMS >= -int64(webhook.MaxSkew/time.Millisecond) && offsetMS <= int64(webhook.MaxSkew/time.Millisecond)
		switch {
		case inWindow && err != nil:
			t.Fatalf("signed body in the window: %v", err)
		case !inWindow && !errors.Is(err, webhook.ErrStale):
			t.Fatalf("signed body out of the window: %v", err)
		}
		// Whatever the signature header says, Verify accepts only the real one.
		err = p.Verify(headers(junk, ts), body, now)
		if err == nil && !strings.EqualFold(strings.TrimSpace(junk), sig) {
			t.Fatalf("junk signature %q accepted", junk)
		}
		if err != nil && !errors.Is(err, webhook.ErrUnauthorized) && !errors.Is(err, webhook.ErrStale) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(body) > 0 {
			tampered := append([]byte{}, body...)
			tampered[0] ^= 1
			if err := p.Verify(headers(sig, ts), tampered, now); !errors.Is(err, webhook.ErrUnauthorized) {
				t.Fatalf("tampered body: %v", err)
			}
		}
	})
}

// A field the event type does not use, given a type no event type expects,
// sends the body down the two-pass path; both paths must read every fixture
// alike.
func TestOnePassAndTwoPassParseAlike(t *testing.T) {
	tests := []struct{ fixture, unused string }{
		{"message_sent.json", "data.messages"},
		{"message_updated.json", "data.recipient"},
		{"message_deleted.json", "data.messages"},
		{"notification_triggered.json", "data.message"},
		{"message_read.json", "data.messages"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			body := webhooktest.Fixture(t, tt.fixture)
			fast, err := New(secret).Parse(nil, body)
			if err != nil {
				t.Fatal(err)
			}
			slow, err := New(secret).Parse(nil, webhooktest.Edit(t, body, tt.unused, "not an object"))
			if err != nil {
				t.Fatalf("two-pass parse: %v", err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("paths differ:\none pass %+v\ntwo pass %+v", fast, slow)
			}
			if fast.Kind == webhook.KindIgnore || len(fast.Recipients) == 0 {
				t.Fatalf("fixture parsed to nothing: %+v", fast)
			}
		})
	}
}
