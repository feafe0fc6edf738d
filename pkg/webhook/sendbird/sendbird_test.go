package sendbird

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

const token = "sendbird_master_token"

func header(sig string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("X-Sendbird-Signature", sig)
	}
	return h
}

func TestVerify(t *testing.T) {
	body := webhooktest.Fixture(t, "message_send.json")
	sig := Sign(token, body)
	for _, tt := range []struct {
		name string
		p    *Provider
		h    http.Header
		body []byte
		ok   bool
	}{
		{"good signature verifies", New(token), header(sig), body, true},
		{"signature under another token", New(token), header(Sign("x", body)), body, false},
		{"missing signature", New(token), header(""), body, false},
		{"body changed", New(token), header(sig), append(body, ' '), false},
		{"no token configured", New(""), header(Sign("", body)), body, false},
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
	const conv = "sendbird_group_channel_trip"
	data := map[string]any{"conversationId": conv, "messageId": "1234567890", "senderId": "bob"}
	tests := []struct {
		fixture string
		want    webhook.Event
	}{
		{"message_send.json", webhook.Event{
			Provider: Name, ID: "sendbird:group_channel:message_send:" + conv + ":1234567890", Type: "group_channel:message_send",
			Kind: webhook.KindMessage, Conversation: conv, ConversationName: "Trip planning", Message: "1234567890",
			Sender: "bob", SenderName: "Bob", Icon: "https://example.com/bob.png", Text: "Hello from Sendbird",
			Recipients: []string{"alice", "carol"}, Data: data,
			Members: &notification.Membership{Conversation: conv, Set: []string{"alice", "bob", "carol"}},
			Created: time.UnixMilli(1795341600000).UTC(),
		}},
		{"message_delete.json", webhook.Event{
			Provider: Name, ID: "sendbird:group_channel:message_delete:" + conv + ":1234567890", Type: "group_channel:message_delete",
			Kind: webhook.KindRetract, Conversation: conv, ConversationName: "Trip planning", Message: "1234567890",
			Sender: "bob", SenderName: "Bob", Data: data,
		}},
		{"join.json", webhook.Event{
			Provider: Name, Type: "group_channel:join", Kind: webhook.KindMembership,
			Conversation: conv, ConversationName: "Trip planning",
			Members: &notification.Membership{Conversation: conv, Add: []string{"dave"}},
		}},
		// group_channel:message_read as Sendbird's group channel webhook
		// events page shows it: channel, members (when included) and
		// read_updates, one {user_id, read_ts, unread counts} per reader.
		{"message_read.json", webhook.Event{
			Provider: Name, Type: "group_channel:message_read", Kind: webhook.KindRead,
			Conversation: conv, ConversationName: "Trip planning", Recipients: []string{"alice", "carol"},
			Data:    map[string]any{"conversationId": conv},
			Created: time.UnixMilli(1795341800000).UTC(),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			body := webhooktest.Fixture(t, tt.fixture)
			got, err := New(token).Parse(nil, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.want.ID == "" {
				tt.want.ID = "sendbird:" + tt.want.Type + ":" + webhook.BodyID(body)
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

func TestParseErrorsNameTheField(t *testing.T) {
	for _, tt := range []struct {
		fixture, path string
		value         any
		field         string
	}{
		{"message_send.json", "category", nil, "category"},
		{"message_send.json", "channel", nil, "channel.channel_url"},
		{"message_send.json", "payload", nil, "payload.message_id"},
		{"message_send.json", "payload.message_id", nil, "payload.message_id"},
		{"message_send.json", "payload.message_id", []any{}, "payload.message_id"},
		{"message_send.json", "sender", nil, "sender.user_id"},
		{"message_send.json", "members", map[string]any{}, "members"},
		{"join.json", "users", nil, "users"},
		{"message_read.json", "read_updates", nil, "read_updates"},
		{"message_read.json", "read_updates", []any{}, "read_updates"},
		{"message_read.json", "read_updates", []any{map[string]any{"user_id": ""}}, "read_updates"},
		{"message_read.json", "read_updates", map[string]any{"alice": 1795341790000}, "read_updates"},
		{"message_read.json", "channel", nil, "channel.channel_url"},
		{"message_read.json", "channel.channel_url", nil, "channel.channel_url"},
	} {
		t.Run(tt.fixture+"/"+tt.path, func(t *testing.T) {
			_, err := New(token).Parse(nil, webhooktest.Edit(t, webhooktest.Fixture(t, tt.fixture), tt.path, tt.value))
			var fe *webhook.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Parse error = %v, want a FieldError for %q", err, tt.field)
			}
		})
	}
	var fe *webhook.FieldError
	for _, b := range []string{``, `{`, `[]`} {
		if _, err := New(token).Parse(nil, []byte(b)); !errors.As(err, &fe) {
			t.Errorf("Parse(%q) = %v, want a FieldError", b, err)
		}
	}
}

func TestParseRead(t *testing.T) {
	p := New(token)
	body := webhooktest.Fixture(t, "message_read.json")
	read, err := p.Parse(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.CheckEvent(read); err != nil {
		t.Fatal(err)
	}
	sent, err := p.Parse(nil, webhooktest.Fixture(t, "message_send.json"))
	if err != nil {
		t.Fatal(err)
	}
	if read.Conversation != sent.Conversation {
		t.Fatalf("read of %q, message in %q", read.Conversation, sent.Conversation)
	}
	// A reader named twice, or not at all, counts once or not at all.
	b := webhooktest.Edit(t, body, "read_updates", []any{
		map[string]any{"user_id": "alice", "read_ts": 1},
		map[string]any{"user_id": ""},
		map[string]any{"user_id": "alice", "read_ts": 2},
	})
	if ev, err := p.Parse(nil, b); err != nil || !reflect.DeepEqual(ev.Recipients, []string{"alice"}) {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
	// Another reader, or a later read, is another event.
	later, err := p.Parse(nil, webhooktest.Edit(t, body, "read_updates.0.read_ts", 1795341900000))
	if err != nil || later.ID == read.ID {
		t.Fatalf("later read: id %q, first %q, %v", later.ID, read.ID, err)
	}
}

func TestEventTypesAreKnown(t *testing.T) {
	webhooktest.EventTypesAreKnown(t, New(token))
}

func FuzzParse(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b)
	}
	p := New(token)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := p.Parse(nil, body)
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
	p := New(token)
	f.Fuzz(func(t *testing.T, body []byte, junk string) {
		sig := Sign(token, body)
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
