package standard

import (
	"encoding/base64"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/webhook"
	"github.com/heraldhq/herald/pkg/webhook/webhooktest"
)

var (
	secret    = "whsec_" + base64.StdEncoding.EncodeToString([]byte("herald test key, 32 bytes long!!"))
	oldSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("the key being rotated out"))
	now       = time.Unix(1795341600, 0)
)

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set("webhook-id", id)
	}
	if !ts.IsZero() {
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	}
	if sig != "" {
		h.Set("webhook-signature", sig)
	}
	return h
}

func mustSign(t testing.TB, secret, id string, ts time.Time, body []byte) string {
	t.Helper()
	sig, err := Sign(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func mustNew(t testing.TB, secrets ...string) *Provider {
	t.Helper()
	p, err := New(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignMatchesTheSpecExample(t *testing.T) {
	// The Standard Webhooks specification's example, checked with openssl.
	sig, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil || sig != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("Sign = %q, %v", sig, err)
	}
}

func TestNewRejectsBadSecrets(t *testing.T) {
	for _, s := range [][]string{nil, {""}, {"whsec_"}, {"whsec_not base64!"}, {secret, "whsec_%%"}} {
		if _, err := New(s...); err == nil {
			t.Errorf("New(%q) accepted", s)
		}
	}
	if _, err := Sign("whsec_!", "id", now, nil); err == nil {
		t.Error("Sign accepted a bad secret")
	}
}

func TestVerify(t *testing.T) {
	body := webhooktest.Fixture(t, "send.json")
	const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	sig := mustSign(t, secret, id, now, body)
	oldSig := mustSign(t, oldSecret, id, now, body)
	p := mustNew(t, secret)
	tests := []struct {
		name   string
		p      *Provider
		h      http.Header
		body   []byte
		target error
	}{
		{"good signature verifies", p, headers(id, now, sig), body, nil},
		{"one good entry among several", p, headers(id, now, "v1,AAAA "+oldSig+" "+sig+" v1a,xyz"), body, nil},
		{"either of two secrets", mustNew(t, secret, oldSecret), headers(id, now, oldSig), body, nil},
		{"skew within the window", p, headers(id, now.Add(-webhook.MaxSkew), mustSign(t, secret, id, now.Add(-webhook.MaxSkew), body)), body, nil},
		{"signature under a rotated-out secret", p, headers(id, now, oldSig), body, webhook.ErrUnauthorized},
		{"another version's entry only", p, headers(id, now, "v2,"+strings.TrimPrefix(sig, "v1,")), body, webhook.ErrUnauthorized},
		{"missing id", p, headers("", now, sig), body, webhook.ErrUnauthorized},
		{"another id", p, headers(id+"x", now, sig), body, webhook.ErrUnauthorized},
		{"missing timestamp", p, headers(id, time.Time{}, sig), body, webhook.ErrUnauthorized},
		{"missing signature", p, headers(id, now, ""), body, webhook.ErrUnauthorized},
		{"body changed", p, headers(id, now, sig), append(body, ' '), webhook.ErrUnauthorized},
		{"timestamp changed", p, headers(id, now.Add(time.Second), sig), body, webhook.ErrUnauthorized},
		{"stale", p, headers(id, now.Add(-webhook.MaxSkew-time.Second), mustSign(t, secret, id, now.Add(-webhook.MaxSkew-time.Second), body)), body, webhook.ErrStale},
		{"from the future", p, headers(id, now.Add(webhook.MaxSkew+time.Second), mustSign(t, secret, id, now.Add(webhook.MaxSkew+time.Second), body)), body, webhook.ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Verify(tt.h, tt.body, now)
			if tt.target == nil && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Fatalf("Verify = %v, want %v", err, tt.target)
			}
		})
	}
	h := headers(id, now, sig)
	h.Set("webhook-timestamp", "soon")
	if err := p.Verify(h, body, now); !errors.Is(err, webhook.ErrUnauthorized) {
		t.Errorf("non-numeric timestamp: %v", err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		fixture string
		want    webhook.Event
	}{
		{"send.json", webhook.Event{
			Provider: Name, ID: "msg_1", Type: TypeSend, Kind: webhook.KindNotification,
			Recipients: []string{"alice", "bob"},
			Title:      "Order shipped", Body: "Your order o-77 is on its way.", URL: "/orders/o-77",
			Icon: "https://example.com/truck.png", Tag: "order-o-77", Urgency: "normal", TTL: 3600,
			Data: map[string]any{"orderId": "o-77"},
		}},
		{"send_top_level.json", webhook.Event{
			Provider: Name, ID: "msg_1", Type: TypeSend, Kind: webhook.KindNotification,
			Conversation: "team-standup", Sender: "dave", Recipients: []string{"carol"},
			Title: "Dave, Carol: standup", Body: "Starts in 5 minutes", Urgency: "high",
			Data: map[string]any{"meeting": "m-1"},
		}},
		{"retract.json", webhook.Event{
			Provider: Name, ID: "msg_1", Type: TypeRetract, Kind: webhook.KindRetract,
			Recipients: []string{"alice"}, Tag: "order-o-77", RetractID: "01JD0000000000000000000000",
		}},
		{"other_type.json", webhook.Event{Provider: Name, ID: "msg_1", Type: "user.created"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := mustNew(t, secret).Parse(headers("msg_1", now, "v1,x"), webhooktest.Fixture(t, tt.fixture))
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

func TestParseTakesTheBodyIDWithoutHeader(t *testing.T) {
	ev, err := mustNew(t, secret).Parse(http.Header{}, webhooktest.Fixture(t, "send_top_level.json"))
	if err != nil || ev.ID != "msg_top" {
		t.Fatalf("Parse = %q, %v", ev.ID, err)
	}
	if _, err := mustNew(t, secret).Parse(http.Header{}, webhooktest.Fixture(t, "send.json")); err == nil {
		t.Fatal("no id anywhere, no error")
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		fixture, path string
		value         any
		field         string
	}{
		{"send.json", "type", nil, "type"},
		{"send.json", "data", nil, "data"},
		{"send.json", "data.to", nil, "data.to"},
		{"send.json", "data.to", []any{}, "data.to"},
		{"send.json", "data.to", []any{"alice", ""}, "data.to"},
		{"send.json", "data.to", "alice", "data.to"},
		{"send.json", "data.title", nil, ""}, // body alone is enough
		{"send.json", "data.urgency", "urgent", "data.urgency"},
		{"send.json", "data.ttl", -1, "data.ttl"},
		{"send.json", "data.ttl", "1h", "data.ttl"},
		{"send.json", "data.data", []any{1}, "data.data"},
		{"send.json", "data.url", "javascript:alert(1)", "data.url"},
		{"send.json", "data.url", "//evil.example", "data.url"},
		{"send.json", "data.icon", "java\tscript:alert(1)", "data.icon"},
		{"send.json", "data.url", "/orders/o-77", ""},
		{"send_top_level.json", "url", "javascript:alert(1)", "url"},
		{"send_top_level.json", "to", []any{}, "to"},
		{"send_top_level.json", "urgency", "asap", "urgency"},
		{"retract.json", "data.to", nil, "data.to"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.path, func(t *testing.T) {
			_, err := mustNew(t, secret).Parse(headers("msg_1", now, ""), webhooktest.Edit(t, webhooktest.Fixture(t, tt.fixture), tt.path, tt.value))
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var fe *webhook.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Parse error = %v, want a FieldError for %q", err, tt.field)
			}
		})
	}
	body := webhooktest.Edit(t, webhooktest.Edit(t, webhooktest.Fixture(t, "send.json"), "data.title", nil), "data.body", nil)
	var fe *webhook.FieldError
	if _, err := mustNew(t, secret).Parse(headers("msg_1", now, ""), body); !errors.As(err, &fe) || fe.Field != "data.title" {
		t.Fatalf("neither title nor body: %v", err)
	}
	body = webhooktest.Edit(t, webhooktest.Edit(t, webhooktest.Fixture(t, "retract.json"), "data.id", nil), "data.tag", nil)
	if _, err := mustNew(t, secret).Parse(headers("msg_1", now, ""), body); !errors.As(err, &fe) || fe.Field != "data.id" {
		t.Fatalf("retract of nothing: %v", err)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `{"type":"notification.send","data":[]}`} {
		_, err := mustNew(t, secret).Parse(headers("msg_1", now, ""), []byte(body))
		var fe *webhook.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) error = %v, want a FieldError", body, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b)
	}
	p := mustNew(f, secret)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := p.Parse(headers("msg_1", now, ""), body)
		if err != nil {
			var fe *webhook.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		if ev.Provider != Name || ev.ID != "msg_1" {
			t.Fatalf("provider %q, id %q", ev.Provider, ev.ID)
		}
		if err := webhook.CheckEvent(ev); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	for _, b := range webhooktest.Seeds(f) {
		f.Add(b, "msg_1", int64(0), "")
		f.Add(b, "", int64(301), "v1,AAAA v1,")
	}
	p := mustNew(f, secret, oldSecret)
	f.Fuzz(func(t *testing.T, body []byte, id string, offset int64, junk string) {
		offset %= 86400
		ts := now.Add(time.Duration(offset) * time.Second)
		sig := mustSign(t, secret, id, ts, body)
		err := p.Verify(headers(id, ts, sig), body, now)
		inWindow := offset >= -int64(webhook.MaxSkew/time.Second) && offset <= int64(webhook.MaxSkew/time.Second)
		switch {
		case id == "":
			if !errors.Is(err, webhook.ErrUnauthorized) {
				t.Fatalf("no id: %v", err)
			}
		case inWindow && err != nil:
			t.Fatalf("signed in the window: %v", err)
		case !inWindow && !errors.Is(err, webhook.ErrStale):
			t.Fatalf("signed out of the window: %v", err)
		}
		err = p.Verify(headers(id, ts, junk), body, now)
		if err != nil && !errors.Is(err, webhook.ErrUnauthorized) && !errors.Is(err, webhook.ErrStale) {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil {
			oldSig := mustSign(t, oldSecret, id, ts, body)
			matched := false
			for _, e := range strings.Fields(junk) {
				v, s, _ := strings.Cut(e, ",")
				matched = matched || (v == "v1" && (strings.TrimRight(s, "=") == strings.TrimRight(sig[3:], "=") || strings.TrimRight(s, "=") == strings.TrimRight(oldSig[3:], "=")))
			}
			if !matched {
				t.Fatalf("junk signature %q accepted", junk)
			}
		}
	})
}
