package stream

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

const secret = "stream_api_secret"

func header(sig string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("X-Signature", sig)
	}
	return h
}

func TestVerify(t *testing.T) {
	body := webhooktest.Fixture(t, "message_new.json")
	sig := Sign(secret, body)
	for _, tt := range []struct {
		name string
		p    *Provider
		h    http.Header
		body []byte
		ok   bool
	}{
		{"good signature verifies", New(secret), header(sig), body, true},
		{"signature under another secret", New(secret), header(Sign("x", body)), body, false},
		{"missing signature", New(secret), header(""), body, false},
		{"body changed", New(secret), header(sig), append(body, ' '), false},
		{"no secret configured", New(""), header(Sign("", body)), body, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Verify(tt.h, tt.body, time.Now())
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, webhook.ErrUnauthorized)) {
				t.Fatalf("Verify = %v", err)
			}
		})
	}
	if Sign("k", []byte("hello")) != "406e4b43f87095aa86ca6299d25e875921fefa180f02043bb29bec5681c0c2d0" {
		t.Fatal("Sign: wrong known answer") // from openssl
	}
}

func TestParse(t *testing.T) {
	at := func(s string) time.Time { ts, _ := time.Parse(time.RFC3339, s); return ts.UTC() }
	data := map[string]any{"conversationId": "messaging:trip", "messageId": "bob-5f1c2d", "senderId": "bob"}
	tests := []struct {
		fixture string
		want    webhook.Event
	}{
		{"message_new.json", webhook.Event{
			Provider: Name, ID: "stream:message.new:bob-5f1c2d", Type: "message.new", Kind: webhook.KindMessage,
			Conversation: "messaging:trip", ConversationName: "Trip planning", Message: "bob-5f1c2d",
			Sender: "bob", SenderName: "Bob", Icon: "https://example.com/bob.png", Text: "Hello from Stream",
			Recipients: []string{"alice", "carol"}, Data: data,
			Members: &notification.Membership{Conversation: "messaging:trip", Set: []string{"alice", "bob", "carol"}},
			Created: at("2026-11-22T10:00:00.1Z"),
		}},
		{"message_updated.json", webhook.Event{
			Provider: Name, ID: "stream:message.updated:bob-5f1c2d:1795341660000", Type: "message.updated", Kind: webhook.KindUpdate,
			Conversation: "messaging:trip", Message: "bob-5f1c2d", Sender: "bob", SenderName: "Bob",
			Text: "Hello again from Stream", Data: data, Created: at("2026-11-22T10:01:00.1Z"),
		}},
		{"message_deleted.json", webhook.Event{
			Provider: Name, ID: "stream:message.deleted:bob-5f1c2d", Type: "message.deleted", Kind: webhook.KindRetract,
			Conversation: "messaging:trip", Message: "bob-5f1c2d", Sender: "bob", Data: data,
			Created: at("2026-11-22T10:02:00.1Z"),
		}},
		{"member_added.json", webhook.Event{
			Provider: Name, Type: "member.added", Kind: webhook.KindMembership, Conversation: "messaging:trip",
			Members: &notification.Membership{Conversation: "messaging:trip", Add: []string{"dave"}},
			Created: at("2026-11-22T10:03:00Z"),
		}},
		{"reaction_new.json", webhook.Event{Provider: Name, Type: "reaction.new", Created: at("2026-11-22T10:04:00Z")}},
		// message.read: Stream's MessageReadEvent (cid, channel_id,
		// channel_type, user, last_read_message_id, created_at, thread),
		// with the unread counts the webhook events page says the event's
		// user carries.
		{"message_read.json", webhook.Event{
			Provider: Name, ID: "stream:message.read:messaging:trip:alice:1795341900100", Type: "message.read", Kind: webhook.KindRead,
			Conversation: "messaging:trip", Message: "bob-5f1c2d", Recipients: []string{"alice"},
			Data: map[string]any{
				"conversationId": "messaging:trip", "messageId": "bob-5f1c2d",
				"total_unread_count": 2, "unread_channels": 1, "channel_unread_count": 0,
			},
			Created: at("2026-11-22T10:05:00.1Z"),
		}},
		{"message_read_thread.json", webhook.Event{
			Provider: Name, ID: "stream:message.read:messaging:trip:alice:1795341960000", Type: "message.read",
			Created: at("2026-11-22T10:06:00Z"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			body := webhooktest.Fixture(t, tt.fixture)
			got, err := New(secret).Parse(http.Header{}, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.want.Kind == webhook.KindMembership {
				tt.want.ID = "stream:" + tt.want.Type + ":" + webhook.BodyID(body)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
			if err := webhook.CheckEvent(got); err != nil {
				t.Fatal(err)
			}
		})
	}
	h := http.Header{}
	h.Set("X-Webhook-Id", "wh-1")
	if ev, err := New(secret).Parse(h, webhooktest.Fixture(t, "message_new.json")); err != nil || ev.ID != "wh-1" {
		t.Fatalf("X-Webhook-Id not used: %q, %v", ev.ID, err)
	}
}

func TestParseRead(t *testing.T) {
	p := New(secret)
	read := func(t *testing.T, body []byte, h http.Header) webhook.Event {
		t.Helper()
		ev, err := p.Parse(h, body)
		if err != nil {
			t.Fatal(err)
		}
		if err := webhook.CheckEvent(ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	body := webhooktest.Fixture(t, "message_read.json")
	ev := read(t, body, http.Header{})

	t.Run("the conversation is message.new's, so its notifications' tag", func(t *testing.T) {
		msg := read(t, webhooktest.Fixture(t, "message_new.json"), http.Header{})
		if ev.Conversation != msg.Conversation {
			t.Fatalf("read of %q, message in %q", ev.Conversation, msg.Conversation)
		}
	})
	t.Run("the derived id differs per reader and per read", func(t *testing.T) {
		other := read(t, webhooktest.Edit(t, body, "user.id", "carol"), http.Header{})
		later := read(t, webhooktest.Edit(t, body, "created_at", "2026-11-22T10:09:00Z"), http.Header{})
		again := read(t, body, http.Header{})
		if other.ID == ev.ID || later.ID == ev.ID || again.ID != ev.ID {
			t.Fatalf("ids %q (carol), %q (later), %q (again); alice's %q", other.ID, later.ID, again.ID, ev.ID)
		}
	})
	t.Run("X-Webhook-Id is the id when sent", func(t *testing.T) {
		h := http.Header{}
		h.Set("X-Webhook-Id", "wh-read-1")
		if got := read(t, body, h); got.ID != "wh-read-1" || got.Kind != webhook.KindRead {
			t.Fatalf("id %q, kind %s", got.ID, got.Kind)
		}
	})
	t.Run("without last_read_message_id the whole channel is read", func(t *testing.T) {
		got := read(t, webhooktest.Edit(t, body, "last_read_message_id", nil), http.Header{})
		if got.Kind != webhook.KindRead || got.Message != "" || got.Data["messageId"] != nil {
			t.Fatalf("kind %s, message %q, data %v", got.Kind, got.Message, got.Data)
		}
	})
	t.Run("counts Stream leaves out are left out", func(t *testing.T) {
		b := webhooktest.Edit(t, body, "user.total_unread_count", nil)
		b = webhooktest.Edit(t, b, "user.unread_channels", nil)
		b = webhooktest.Edit(t, b, "user.channel_unread_count", nil)
		got := read(t, b, http.Header{})
		want := map[string]any{"conversationId": "messaging:trip", "messageId": "bob-5f1c2d"}
		if !reflect.DeepEqual(got.Data, want) {
			t.Fatalf("data %v, want %v", got.Data, want)
		}
	})
	t.Run("a thread read is not a read of the channel", func(t *testing.T) {
		for _, b := range [][]byte{
			webhooktest.Fixture(t, "message_read_thread.json"),
			webhooktest.Edit(t, body, "thread_id", "bob-5f1c2d"),
		} {
			if got := read(t, b, http.Header{}); got.Kind != webhook.KindIgnore || got.ID == "" {
				t.Fatalf("thread read: kind %s, id %q", got.Kind, got.ID)
			}
		}
		null := []byte(strings.Replace(string(body), `"last_read_message_id"`, `"thread": null, "last_read_message_id"`, 1))
		if got := read(t, null, http.Header{}); got.Kind != webhook.KindRead {
			t.Fatalf("thread: null read as a thread: %s", got.Kind)
		}
	})
}

func TestEventTypesAreKnown(t *testing.T) {
	webhooktest.EventTypesAreKnown(t, New(secret))
}

func TestParseErrorsNameTheField(t *testing.T) {
	for _, tt := range []struct {
		fixture, path string
		value         any
		field         string
	}{
		{"message_new.json", "type", nil, "type"},
		{"message_new.json", "cid", nil, "cid"},
		{"message_new.json", "message", nil, "message.id"},
		{"message_new.json", "message.id", nil, "message.id"},
		{"message_new.json", "members", "all", "members"},
		{"message_updated.json", "message.text", 3, "message.text"},
		{"member_added.json", "member", nil, "member.user_id"},
		{"message_read.json", "user", nil, "user.id"},
		{"message_read.json", "user.id", nil, "user.id"},
		{"message_read.json", "user.id", "", "user.id"},
		{"message_read.json", "cid", nil, "cid"},
		{"message_read.json", "user.total_unread_count", "two", "user.total_unread_count"},
	} {
		t.Run(tt.fixture+"/"+tt.path, func(t *testing.T) {
			_, err := New(secret).Parse(http.Header{}, webhooktest.Edit(t, webhooktest.Fixture(t, tt.fixture), tt.path, tt.value))
			var fe *webhook.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Parse error = %v, want a FieldError for %q", err, tt.field)
			}
		})
	}
	body := webhooktest.Edit(t, webhooktest.Edit(t, webhooktest.Fixture(t, "message_new.json"), "user", nil), "message.user", nil)
	var fe *webhook.FieldError
	if _, err := New(secret).Parse(http.Header{}, body); !errors.As(err, &fe) || fe.Field != "user.id" {
		t.Fatalf("no sender: %v", err)
	}
	for _, b := range []string{``, `{`, `[]`} {
		if _, err := New(secret).Parse(http.Header{}, []byte(b)); !errors.As(err, &fe) {
			t.Errorf("Parse(%q) = %v, want a FieldError", b, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b)
	}
	p := New(secret)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := p.Parse(http.Header{}, body)
		if err != nil {
			var fe *webhook.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		if err := webhook.CheckEvent(ev); err != nil || ev.Provider != Name {
			t.Fatalf("%v (provider %q)", err, ev.Provider)
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
		if err == nil && !strings.EqualFold(strings.TrimSpace(junk), sig) {
			t.Fatalf("junk signature %q accepted", junk)
		}
		if err != nil && !errors.Is(err, webhook.ErrUnauthorized) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
