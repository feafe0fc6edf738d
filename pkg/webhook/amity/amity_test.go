package amity

import (
	"encoding/json"
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

const secret = "amity_test_secret"

func header(sig string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("X-Amity-Signature", sig)
	}
	return h
}

func TestVerify(t *testing.T) {
	body := webhooktest.Fixture(t, "message_did_create.json")
	sig := Sign(secret, body)
	tests := []struct {
		name   string
		p      *Provider
		h      http.Header
		body   []byte
		target error
	}{
		{"good signature verifies", New(secret), header(sig), body, nil},
		{"unpadded base64 verifies", New(secret), header(strings.TrimRight(sig, "=")), body, nil},
		{"signature under another secret", New(secret), header(Sign("other", body)), body, webhook.ErrUnauthorized},
		{"hex instead of base64", New(secret), header(strings.Repeat("ab", 32)), body, webhook.ErrUnauthorized},
		{"missing signature", New(secret), header(""), body, webhook.ErrUnauthorized},
		{"body changed", New(secret), header(sig), append(body, ' '), webhook.ErrUnauthorized},
		{"no secret configured", New(""), header(Sign("", body)), body, webhook.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Verify(tt.h, tt.body, time.Now())
			if tt.target == nil && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Fatalf("Verify = %v, want %v", err, tt.target)
			}
		})
	}
}

func TestSignKnownAnswer(t *testing.T) {
	// HMAC-SHA256("k", "hello"), computed with openssl.
	if got := Sign("k", []byte("hello")); got != "QG5LQ/hwlaqGymKZ0l6HWSH++hgPAgQ7spvsVoHAwtA=" {
		t.Fatalf("Sign = %s", got)
	}
}

func TestParse(t *testing.T) {
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts.UTC()
	}
	data := map[string]any{"conversationId": "ch_trip", "messageId": "msg_100", "senderId": "bob"}
	tests := []struct {
		fixture string
		want    webhook.Event
	}{
		{"message_did_create.json", webhook.Event{
			Provider: Name, ID: "amity:message.didCreate:msg_100", Type: "message.didCreate", Kind: webhook.KindMessage,
			Conversation: "ch_trip", ConversationName: "Trip planning", Message: "msg_100",
			Sender: "bob", SenderName: "Bob", Text: "Hello from Amity", Data: data,
			Members: &notification.Membership{Conversation: "ch_trip", Set: []string{"alice", "bob", "carol"}},
			Created: at("2026-11-22T10:00:00Z"),
		}},
		{"message_did_update.json", webhook.Event{
			Provider: Name, ID: "amity:message.didUpdate:msg_100:1795341660000", Type: "message.didUpdate", Kind: webhook.KindUpdate,
			Conversation: "ch_trip", ConversationName: "Trip planning", Message: "msg_100",
			Sender: "bob", SenderName: "Bob", Text: "Hello again from Amity", Data: data,
			Created: at("2026-11-22T10:01:00Z"),
		}},
		{"message_did_delete.json", webhook.Event{
			Provider: Name, ID: "amity:message.didDelete:msg_100", Type: "message.didDelete", Kind: webhook.KindRetract,
			Conversation: "ch_trip", Message: "msg_100", Sender: "bob", SenderName: "Bob", Data: data,
			Created: at("2026-11-22T10:02:00Z"),
		}},
		{"channel_did_join.json", webhook.Event{
			Provider: Name, Type: "channel.didJoin", Kind: webhook.KindMembership,
			Conversation: "ch_trip", ConversationName: "Trip planning",
			Members: &notification.Membership{Conversation: "ch_trip", Add: []string{"dave"}},
		}},
		{"channel_did_ban.json", webhook.Event{
			Provider: Name, Type: "channel.didBan", Kind: webhook.KindMembership,
			Conversation: "ch_trip", ConversationName: "Trip planning",
			Members: &notification.Membership{Conversation: "ch_trip", Remove: []string{"mallory"}},
		}},
		{"channel_did_delete.json", webhook.Event{
			Provider: Name, Type: "channel.didDelete", Kind: webhook.KindMembership,
			Conversation: "ch_trip", ConversationName: "Trip planning",
			Members: &notification.Membership{Conversation: "ch_trip", Deleted: true},
		}},
		{"post_did_create.json", webhook.Event{Provider: Name, Type: "post.didCreate"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			body := webhooktest.Fixture(t, tt.fixture)
			got, err := New(secret).Parse(nil, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if strings.HasPrefix(tt.want.Type, "channel.") {
				// Channel events are keyed by a hash of the body.
				tt.want.ID = "amity:" + tt.want.Type + ":" + webhook.BodyID(body)
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

func TestParseTakesAPayloadID(t *testing.T) {
	body := webhooktest.Edit(t, webhooktest.Fixture(t, "message_did_create.json"), "id", "evt_42")
	ev, err := New(secret).Parse(nil, body)
	if err != nil || ev.ID != "evt_42" {
		t.Fatalf("Parse = %q, %v", ev.ID, err)
	}
}

func TestParseReadsMessageFeeds(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(webhooktest.Fixture(t, "message_did_create.json"), &root); err != nil {
		t.Fatal(err)
	}
	d := root["data"].(map[string]any)
	d["messageFeeds"], d["messages"] = d["messages"], []any{map[string]any{"channelId": "ch_trip"}}
	body, _ := json.Marshal(root)
	ev, err := New(secret).Parse(nil, body)
	if err != nil || ev.Message != "msg_100" || ev.Sender != "bob" {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		fixture, path string
		value         any
		field         string
	}{
		{"message_did_create.json", "event", nil, "event"},
		{"message_did_create.json", "data", nil, "data"},
		{"message_did_create.json", "data.messages", nil, "data.messages"},
		{"message_did_create.json", "data.messages.0.messageId", nil, "data.messages"},
		{"message_did_create.json", "data.messages.0.channelId", nil, "data.messages[0].channelId"},
		{"message_did_create.json", "data.messages.0.userId", nil, "data.messages[0].userId"},
		{"message_did_create.json", "data.messages.0.userId", 7, "data.messages.userId"},
		{"message_did_create.json", "data.channels", "ch_trip", "data.channels"},
		{"message_did_update.json", "data.messages.0.userId", nil, "data.messages[0].userId"},
		{"message_did_delete.json", "data.messages.0.channelId", nil, "data.messages[0].channelId"},
		{"channel_did_delete.json", "data.channels", nil, "data.channels"},
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

func TestParseMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `{"event":"message.didCreate","data":[]}`} {
		_, err := New(secret).Parse(nil, []byte(body))
		var fe *webhook.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) error = %v, want a FieldError", body, err)
		}
	}
}

func TestUnknownTypeIsIgnored(t *testing.T) {
	ev, err := New(secret).Parse(nil, []byte(`{"event":"story.didCreate","data":{}}`))
	if err != nil || ev.Kind != webhook.KindIgnore || ev.Type != "story.didCreate" {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestEventTypesAreKnown(t *testing.T) {
	webhooktest.EventTypesAreKnown(t, New(secret))
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
		if ev.Recipients != nil {
			t.Fatalf("amity names no recipients, got %v", ev.Recipients)
		}
	})
}

func FuzzVerify(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b, "")
	}
	p := New(secret)
	f.Fuzz(func(t *testing.T, body []byte, junk string) {
		sig := Sign(secret, body)
		if err := p.Verify(header(sig), body, time.Time{}); err != nil {
			t.Fatalf("signed body: %v", err)
		}
		err := p.Verify(header(junk), body, time.Time{})
		if err == nil && strings.TrimRight(strings.TrimSpace(junk), "=") != strings.TrimRight(sig, "=") {
			t.Fatalf("junk signature %q accepted", junk)
		}
		if err != nil && !errors.Is(err, webhook.ErrUnauthorized) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(body) > 0 {
			tampered := append([]byte{}, body...)
			tampered[0] ^= 0x01
			if err := p.Verify(header(sig), tampered, time.Time{}); !errors.Is(err, webhook.ErrUnauthorized) {
				t.Fatalf("tampered body: %v", err)
			}
		}
	})
}
