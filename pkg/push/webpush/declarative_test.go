package webpush_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/webpush"
)

// TestDeviceWithAScopeGetsADeclarativeMessage: a subscription whose
// service worker scope is known gets the declarative JSON (decrypted by
// the fake push service): "web_push": 8030, the notification with an
// absolute navigate (the relative URL resolved against the scope), and
// the id and fields herald-sw.js needs in its data.
func TestDeviceWithAScopeGetsADeclarativeMessage(t *testing.T) {
	f := setup(t, "ops@example.com")
	d := f.device()
	d.Scope, d.Locale = "https://app.example/", "de-DE"
	m := message()
	m.Icon = "/img/bob.png"
	if err := f.sender.Send(context.Background(), d, m); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	p := f.fake.Pushes()[0]
	want := `{"web_push":8030,"notification":{"title":"Bob","body":"Hello!","navigate":"https://app.example/chat/c1","tag":"c1","icon":"https://app.example/img/bob.png","lang":"de-DE","timestamp":1795341600000,"data":{"id":"01JD0001","user":"alice","type":"message.sent","url":"/chat/c1","urgency":"high","created_at":"2026-11-22T10:00:00Z","data":{"conversationId":"c1"}}},"mutable":true}`
	if string(p.Payload) != want {
		t.Errorf("payload\n got %s\nwant %s", p.Payload, want)
	}
	if p.Topic != "c1" || p.Urgency != "high" {
		t.Errorf("topic %q urgency %q", p.Topic, p.Urgency)
	}
}

func TestDeclarativeNavigate(t *testing.T) {
	for _, tc := range []struct{ scope, url, want string }{
		{"https://app.example/", "", "https://app.example/"},
		{"https://app.example/app/", "inbox?x=1", "https://app.example/app/inbox?x=1"},
		{"https://app.example/", "https://other.example/p", "https://other.example/p"},
		{"http://localhost:8080/", "/c/1", "http://localhost:8080/c/1"},
	} {
		f := setup(t, "ops@example.com")
		d := f.device()
		d.Scope = tc.scope
		m := message()
		m.URL = tc.url
		if err := f.sender.Send(context.Background(), d, m); err != nil {
			t.Fatal(err)
		}
		var got webpush.Declarative
		if err := f.fake.Pushes()[0].JSON(&got); err != nil {
			t.Fatal(err)
		}
		if got.WebPush != webpush.DeclarativeVersion || got.Notification.Navigate != tc.want || !got.Mutable {
			t.Errorf("scope %q url %q: %+v, want navigate %q", tc.scope, tc.url, got, tc.want)
		}
	}
}

// TestWithoutAScopeOrForARetractionTheFrameGoes: a device registered by a
// client that did not report its scope (an older herald.js, whose worker
// reads only frames), a scope that is not an absolute http(s) URL, and
// every retraction get the live frame.
func TestWithoutAScopeOrForARetractionTheFrameGoes(t *testing.T) {
	for _, tc := range []struct {
		name, scope string
		m           *push.Message
		prefix      string
	}{
		{"no scope", "", message(), `{"type":"notification",`},
		{"relative scope", "/app/", message(), `{"type":"notification",`},
		{"javascript scope", "javascript:alert(1)", message(), `{"type":"notification",`},
		{"retraction", "https://app.example/", &push.Message{ID: "n1", Tag: "c1", Retract: true}, `{"type":"retract",`},
	} {
		f := setup(t, "ops@example.com")
		d := f.device()
		d.Scope = tc.scope
		if err := f.sender.Send(context.Background(), d, tc.m); err != nil {
			t.Fatal(err)
		}
		if p := f.fake.Pushes()[0].Payload; !strings.HasPrefix(string(p), tc.prefix) {
			t.Errorf("%s: payload %s, want the frame", tc.name, p)
		}
	}
}

// TestLargeDeclarativeMessageIsCutToFit: the declarative form is fitted
// like the frame: data first, then the body.
func TestLargeDeclarativeMessageIsCutToFit(t *testing.T) {
	f := setup(t, "ops@example.com")
	d := f.device()
	d.Scope = "https://app.example/"
	m := message()
	m.Body = strings.Repeat("ünïcode ", 1000)
	if err := f.sender.Send(context.Background(), d, m); err != nil {
		t.Fatal(err)
	}
	p := f.fake.Pushes()[0]
	var got webpush.Declarative
	if err := p.JSON(&got); err != nil {
		t.Fatal(err)
	}
	if len(p.Payload) > webpush.MaxPayload || got.Notification.Data.Data != nil || !strings.HasSuffix(got.Notification.Body, "…") || got.WebPush != 8030 {
		t.Errorf("payload %d bytes, data %v", len(p.Payload), got.Notification.Data.Data)
	}
}

// TestBadgeAndClearingPush: a declarative message carries the unread
// total as app_badge; a clearing push is the read frame, declarative or
// not (it shows nothing); and none goes to Apple's push service, which
// revokes subscriptions that receive pushes showing nothing.
func TestBadgeAndClearingPush(t *testing.T) {
	f := setup(t, "ops@example.com")
	d := f.device()
	d.Scope = "https://app.example/"
	five, four := 5, 4
	m := message()
	m.Badge = &five
	if err := f.sender.Send(context.Background(), d, m); err != nil {
		t.Fatal(err)
	}
	clear := &push.Message{ID: "read:1", Clear: []string{"01JD0001"}, Tag: "c1", Badge: &four}
	if err := f.sender.Send(context.Background(), d, clear); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	ps := f.fake.Pushes()
	var got webpush.Declarative
	if err := ps[0].JSON(&got); err != nil || got.Notification.AppBadge == nil || *got.Notification.AppBadge != 5 {
		t.Errorf("declarative payload %s", ps[0].Payload)
	}
	if want := `{"type":"read","ids":["01JD0001"],"tag":"c1","badge":4}`; string(ps[1].Payload) != want || ps[1].Topic != "c1" {
		t.Errorf("clearing push %s topic %q, want %s under the tag's topic", ps[1].Payload, ps[1].Topic, want)
	}
	apple := *d
	apple.Endpoint = "https://web.push.apple.com/QGuQyavXutnMH"
	if err := f.sender.Send(context.Background(), &apple, clear); !errors.Is(err, push.ErrSkipped) {
		t.Errorf("clearing push to Apple: %v, want skipped", err)
	}
	if o, _ := push.OutcomeOf(push.ErrSkipped); o != push.Skipped {
		t.Errorf("outcome of a skip: %v", o)
	}
	if n := len(f.fake.Pushes()); n != 2 {
		t.Errorf("%d pushes, want 2", n)
	}
}
