package notifly

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

const secret = "whk_test_notifly"

func header(sig string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("X-Notifly-Signature", sig)
	}
	return h
}

func TestVerify(t *testing.T) {
	body := webhooktest.Fixture(t, "message_created.json")
	sig := Sign(secret, body)
	tests := []struct {
		name   string
		p      *Provider
		h      http.Header
		body   []byte
		target error
	}{
		{"good signature verifies", New(secret), header(sig), body, nil},
		{"upper-case hex verifies", New(secret), header(strings.ToUpper(sig)), body, nil},
		{"signature under another secret", New(secret), header(Sign("other", body)), body, webhook.ErrUnauthorized},
		{"missing signature", New(secret), header(""), body, webhook.ErrUnauthorized},
		{"signature not hex", New(secret), header("not-hex"), body, webhook.ErrUnauthorized},
		{"truncated signature", New(secret), header(sig[:62]), body, webhook.ErrUnauthorized},
		{"body changed", New(secret), header(sig), append(body, '\n'), webhook.ErrUnauthorized},
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
	if got := Sign("k", []byte("hello")); got != "406e4b43f87095aa86ca6299d25e875921fefa180f02043bb29bec5681c0c2d0" {
		t.Fatalf("Sign = %s", got)
	}
}

func TestParse(t *testing.T) {
	text := "I’m traveling with my dad. He’s at a meeting. I hate meetings."
	msgData := map[string]any{"conversationId": "xgQQXg3hrtjh7AvZ", "messageId": "SIuAFUNKdSYHZF2w", "senderId": "WAz8eIbvDR60rouK"}
	tests := []struct {
		fixture string
		want    webhook.Event
	}{
		{"message_created.json", webhook.Event{
			Provider: Name, ID: "a056V7R7NmNRjl70", Type: "message.created", Kind: webhook.KindMessage,
			Conversation: "xgQQXg3hrtjh7AvZ", Message: "SIuAFUNKdSYHZF2w",
			Sender: "WAz8eIbvDR60rouK", SenderName: "KevinMcCallister", Text: text,
			Icon: "https://assets.notifly.chat/avatars/kevin.jpg",
			Data: msgData, Created: time.Unix(692233200, 0).UTC(),
		}},
		{"message_updated.json", webhook.Event{
			Provider: Name, ID: "b156V7R7NmNRjl71", Type: "message.updated", Kind: webhook.KindUpdate,
			Conversation: "xgQQXg3hrtjh7AvZ", Message: "SIuAFUNKdSYHZF2w",
			Sender: "WAz8eIbvDR60rouK", SenderName: "KevinMcCallister",
			Text: "I’m traveling with my dad. He’s at a meeting. I really hate meetings.",
			Icon: "https://assets.notifly.chat/avatars/kevin.jpg",
			Data: msgData, Created: time.Unix(692233260, 0).UTC(),
		}},
		{"message_deleted.json", webhook.Event{
			Provider: Name, ID: "c256V7R7NmNRjl72", Type: "message.deleted", Kind: webhook.KindRetract,
			Conversation: "xgQQXg3hrtjh7AvZ", Message: "SIuAFUNKdSYHZF2w",
			Data:    map[string]any{"conversationId": "xgQQXg3hrtjh7AvZ", "messageId": "SIuAFUNKdSYHZF2w"},
			Created: time.Unix(692233320, 0).UTC(),
		}},
		{"conversation_updated.json", webhook.Event{
			Provider: Name, ID: "d356V7R7NmNRjl73", Type: "conversation.updated", Kind: webhook.KindMembership,
			Conversation: "xgQQXg3hrtjh7AvZ", ConversationName: "Home alone",
			Members: &notification.Membership{Conversation: "xgQQXg3hrtjh7AvZ",
				Set: []string{"WAz8eIbvDR60rouK", "Kq2mQ9fFw1Hc7Y3n", "Pz8vLw3tQ0bN5rXe"}},
			Created: time.Unix(692233400, 0).UTC(),
		}},
		{"group_created.json", webhook.Event{
			Provider: Name, ID: "e456V7R7NmNRjl74", Type: "group.created", Kind: webhook.KindMembership,
			Conversation: "gConv0000000001", ConversationName: "The McCallisters",
			Members: &notification.Membership{Conversation: "gConv0000000001",
				Set: []string{"WAz8eIbvDR60rouK", "Kq2mQ9fFw1Hc7Y3n"}},
			Created: time.Unix(692233500, 0).UTC(),
		}},
		{"group_deleted.json", webhook.Event{
			Provider: Name, ID: "g656V7R7NmNRjl76", Type: "group.deleted", Kind: webhook.KindMembership,
			Conversation: "gConv0000000001",
			Members:      &notification.Membership{Conversation: "gConv0000000001", Deleted: true},
		}},
		{"conversation_created_bare.json", webhook.Event{
			Provider: Name, ID: "f556V7R7NmNRjl75", Type: "conversation.created", Kind: webhook.KindIgnore,
		}},
		{"contact_created.json", webhook.Event{
			Provider: Name, ID: "h756V7R7NmNRjl77", Type: "contact.created", Kind: webhook.KindIgnore,
		}},
		{"attachment_created.json", webhook.Event{
			Provider: Name, ID: "i856V7R7NmNRjl78", Type: "attachment.created", Kind: webhook.KindIgnore,
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

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		fixture, path string
		value         any
		field         string
	}{
		{"message_created.json", "id", nil, "id"},
		{"message_created.json", "type", nil, "type"},
		{"message_created.json", "payload", nil, "payload"},
		{"message_created.json", "payload.id", nil, "payload.id"},
		{"message_created.json", "payload.conversation_id", nil, "payload.conversation_id"},
		{"message_created.json", "payload.contact", nil, "payload.contact.id"},
		{"message_created.json", "payload.contact.id", nil, "payload.contact.id"},
		{"message_created.json", "payload.message", true, "payload.message"},
		{"message_updated.json", "payload.contact.id", nil, "payload.contact.id"},
		{"message_deleted.json", "payload.id", nil, "payload.id"},
		{"conversation_updated.json", "payload.id", nil, "payload.id"},
		{"conversation_updated.json", "payload.members", "everyone", "payload.members"},
		{"group_deleted.json", "payload.id", nil, "payload.id"},
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
	for _, body := range []string{``, `{`, `[]`, `{"id":"x","type":"message.created","payload":[]}`} {
		_, err := New(secret).Parse(nil, []byte(body))
		var fe *webhook.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) error = %v, want a FieldError", body, err)
		}
	}
}

func TestUnknownTypeIsIgnored(t *testing.T) {
	ev, err := New(secret).Parse(nil, []byte(`{"id":"e9","type":"reaction.created","payload":{}}`))
	if err != nil || ev.Kind != webhook.KindIgnore || ev.ID != "e9" || ev.Type != "reaction.created" {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestKnownEventTypesAreTheFifteenDocumented(t *testing.T) {
	p := New(secret)
	known := p.KnownEventTypes()
	if len(known) != 15 {
		t.Fatalf("%d known types, want 15", len(known))
	}
	for _, typ := range p.EventTypes() {
		found := false
		for _, k := range known {
			found = found || k == typ
		}
		if !found {
			t.Errorf("%s acted on but not known", typ)
		}
	}
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
			t.Fatalf("notifly names no recipients, got %v", ev.Recipients)
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
		if len(body) > 0 {
			tampered := append([]byte{}, body...)
			tampered[len(tampered)-1] ^= 0x20
			if err := p.Verify(header(sig), tampered, time.Time{}); !errors.Is(err, webhook.ErrUnauthorized) {
				t.Fatalf("tampered body: %v", err)
			}
		}
	})
}
