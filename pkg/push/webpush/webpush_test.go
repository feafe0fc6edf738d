package webpush_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/pushtest"
	"github.com/heraldhq/herald/pkg/push/safedial"
	"github.com/heraldhq/herald/pkg/push/webpush"
)

type fixture struct {
	fake   *pushtest.WebPushServer
	sender *webpush.Sender
	public string
}

func setup(t testing.TB, subject string) *fixture {
	t.Helper()
	fake := pushtest.NewWebPushServer(t)
	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	s, err := webpush.New(webpush.Options{PublicKey: pub, PrivateKey: priv, Subject: subject, Client: fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{fake: fake, sender: s, public: pub}
}

func (f *fixture) device() *push.Device {
	ep, p256dh, auth := f.fake.NewSubscription()
	return &push.Device{ID: "dev_1", User: "alice", Platform: push.PlatformWebPush, Endpoint: ep, P256dh: p256dh, Auth: auth}
}

func message() *push.Message {
	return &push.Message{
		ID: "01JD0001", User: "alice", Type: "message.sent", Title: "Bob", Body: "Hello!",
		Icon: "https://example.com/bob.png", URL: "/chat/c1", Tag: "c1", Urgency: "high",
		Data:    map[string]any{"conversationId": "c1"},
		Created: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), TTL: 90 * time.Second,
	}
}

func outcome(t *testing.T, err error, want push.Outcome) *push.Error {
	t.Helper()
	var pe *push.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *push.Error with outcome %s", err, want)
	}
	if pe.Outcome != want {
		t.Fatalf("outcome %s (%v), want %s", pe.Outcome, err, want)
	}
	return pe
}

func TestSendDeliversEncryptedPayloadWithHeaders(t *testing.T) {
	f := setup(t, "mailto:ops@example.com")
	f.fake.RequireVAPIDKey(f.public)
	d := f.device()
	if err := f.sender.Send(context.Background(), d, message()); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	got := f.fake.Pushes()
	if len(got) != 1 {
		t.Fatalf("%d pushes, want 1", len(got))
	}
	p := got[0]
	want := `{"type":"notification","notification":{"id":"01JD0001","user":"alice","type":"message.sent","title":"Bob","body":"Hello!","icon":"https://example.com/bob.png","url":"/chat/c1","tag":"c1","urgency":"high","data":{"conversationId":"c1"},"created_at":"2026-11-22T10:00:00Z"}}`
	if string(p.Payload) != want {
		t.Errorf("payload\n got %s\nwant %s", p.Payload, want)
	}
	if p.Endpoint != d.Endpoint || p.TTL != 90 || p.Urgency != "high" || p.Topic != "c1" {
		t.Errorf("endpoint %q TTL %d urgency %q topic %q", p.Endpoint, p.TTL, p.Urgency, p.Topic)
	}
	if p.Subject != "mailto:ops@example.com" {
		t.Errorf("sub = %q", p.Subject)
	}
	if p.Audience != f.fake.URL() {
		t.Errorf("aud = %q, want %q", p.Audience, f.fake.URL())
	}
	if left := time.Until(p.Expires); left <= 0 || left > 24*time.Hour {
		t.Errorf("VAPID exp in %s, want within 24 h", left)
	}
	if p.VAPIDKey != f.public {
		t.Errorf("k = %q, want the VAPID public key", p.VAPIDKey)
	}
}

func TestSubjectNeverGetsDoubleMailto(t *testing.T) {
	for subject, want := range map[string]string{
		"mailto:ops@example.com": "mailto:ops@example.com",
		"MAILTO:ops@example.com": "mailto:ops@example.com",
		"ops@example.com":        "mailto:ops@example.com",
		"https://herald.example": "https://herald.example",
	} {
		f := setup(t, subject)
		if err := f.sender.Send(context.Background(), f.device(), message()); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		f.fake.AssertNoFailures(t)
		if got := f.fake.Pushes()[0].Subject; got != want {
			t.Errorf("subject %q: sub = %q, want %q", subject, got, want)
		}
	}
}

func TestDefaultTTLAndNoUrgencyHeader(t *testing.T) {
	f := setup(t, "ops@example.com")
	m := message()
	m.TTL, m.Urgency, m.Tag = 0, "", ""
	if err := f.sender.Send(context.Background(), f.device(), m); err != nil {
		t.Fatal(err)
	}
	p := f.fake.Pushes()[0]
	if p.TTL != int(webpush.DefaultTTL/time.Second) || p.Urgency != "" || p.Topic != "" {
		t.Errorf("TTL %d urgency %q topic %q", p.TTL, p.Urgency, p.Topic)
	}
}

func TestRetractIsADataPush(t *testing.T) {
	f := setup(t, "ops@example.com")
	if err := f.sender.Send(context.Background(), f.device(), &push.Message{ID: "n1", Tag: "conversation/c1", Retract: true}); err != nil {
		t.Fatal(err)
	}
	p := f.fake.Pushes()[0]
	if string(p.Payload) != `{"type":"retract","id":"n1","tag":"conversation/c1"}` {
		t.Errorf("payload %s", p.Payload)
	}
	if p.Topic != push.Topic("conversation/c1") {
		t.Errorf("topic %q", p.Topic)
	}
}

func TestLargeBodyIsCutToFit(t *testing.T) {
	f := setup(t, "ops@example.com")
	m := message()
	m.Body = strings.Repeat("ünïcode ", 1000)
	if err := f.sender.Send(context.Background(), f.device(), m); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	p := f.fake.Pushes()[0]
	var fr struct{ Notification push.Message }
	if err := p.JSON(&fr); err != nil {
		t.Fatal(err)
	}
	if len(p.Payload) > webpush.MaxPayload || fr.Notification.Data != nil || !strings.HasSuffix(fr.Notification.Body, "…") {
		t.Errorf("payload %d bytes, data %v, body tail %q", len(p.Payload), fr.Notification.Data, fr.Notification.Body[len(fr.Notification.Body)-10:])
	}
}

func TestGoneOn410And404(t *testing.T) {
	f := setup(t, "ops@example.com")
	d := f.device()
	f.fake.Unsubscribe(d.Endpoint)
	pe := outcome(t, f.sender.Send(context.Background(), d, message()), push.Gone)
	if pe.Status != http.StatusGone {
		t.Errorf("status %d", pe.Status)
	}
	d.Endpoint = f.fake.URL() + "/push/unknown"
	outcome(t, f.sender.Send(context.Background(), d, message()), push.Gone)
	f.fake.AssertNoFailures(t)
}

func TestRetryAfterOn429(t *testing.T) {
	f := setup(t, "ops@example.com")
	d := f.device()
	f.fake.Answer(d.Endpoint, 1, http.StatusTooManyRequests, "7")
	pe := outcome(t, f.sender.Send(context.Background(), d, message()), push.Retry)
	if pe.Status != 429 || pe.RetryAfter != 7*time.Second {
		t.Errorf("status %d RetryAfter %s", pe.Status, pe.RetryAfter)
	}
	f.fake.Answer(d.Endpoint, 1, http.StatusServiceUnavailable, time.Now().Add(time.Minute).UTC().Format(http.TimeFormat))
	pe = outcome(t, f.sender.Send(context.Background(), d, message()), push.Retry)
	if pe.RetryAfter < 58*time.Second || pe.RetryAfter > time.Minute {
		t.Errorf("HTTP-date Retry-After gave %s", pe.RetryAfter)
	}
	if len(f.fake.Pushes()) != 0 {
		t.Error("a refused push was recorded as delivered")
	}
}

func TestRetryingSenderRetries429ThenDeliversOnce(t *testing.T) {
	f := setup(t, "ops@example.com")
	d := f.device()
	f.fake.Answer(d.Endpoint, 1, http.StatusTooManyRequests, "")
	s := push.Retrying(f.sender, push.Policy{MaxAttempts: 3, Base: time.Millisecond, Cap: 10 * time.Millisecond})
	if err := s.Send(context.Background(), d, message()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fake.Pushes()); n != 1 || f.fake.Requests() != 2 {
		t.Fatalf("%d pushes in %d requests, want 1 in 2", n, f.fake.Requests())
	}
}

// rewrite is a transport that lets a test change a request on its way to
// the fake.
type rewrite struct {
	base http.RoundTripper
	fn   func(*http.Request)
}

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	r.fn(req)
	return r.base.RoundTrip(req)
}

func TestFakeRejectsBadVAPID(t *testing.T) {
	cases := map[string]func(fake *pushtest.WebPushServer, r *http.Request){
		"tampered signature": func(_ *pushtest.WebPushServer, r *http.Request) {
			h := r.Header.Get("Authorization")
			i := strings.Index(h, ", k=") - 5
			c := byte('A')
			if h[i] == 'A' {
				c = 'B'
			}
			r.Header.Set("Authorization", h[:i]+string(c)+h[i+1:])
		},
		"wrong audience": func(fake *pushtest.WebPushServer, r *http.Request) {
			// The sender signed for push.example.net; deliver it to the fake.
			u, _ := url.Parse(fake.URL())
			r.URL.Host, r.Host = u.Host, u.Host
		},
		"no authorization": func(_ *pushtest.WebPushServer, r *http.Request) { r.Header.Del("Authorization") },
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			f := setup(t, "ops@example.com")
			d := f.device()
			if name == "wrong audience" {
				d.Endpoint = strings.Replace(d.Endpoint, f.fake.URL(), "https://push.example.net", 1)
			}
			client := f.fake.Client()
			client.Transport = rewrite{base: client.Transport, fn: func(r *http.Request) { tamper(f.fake, r) }}
			pub, priv, _ := webpush.GenerateVAPIDKeys()
			s, err := webpush.New(webpush.Options{PublicKey: pub, PrivateKey: priv, Subject: "ops@example.com", Client: client})
			if err != nil {
				t.Fatal(err)
			}
			pe := outcome(t, s.Send(context.Background(), d, message()), push.Failed)
			if pe.Status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", pe.Status)
			}
			if len(f.fake.Failures()) != 1 || len(f.fake.Pushes()) != 0 {
				t.Errorf("failures %q, pushes %d", f.fake.Failures(), len(f.fake.Pushes()))
			}
		})
	}
}

func TestFakeRejectsOtherVAPIDKeyWith403(t *testing.T) {
	f := setup(t, "ops@example.com")
	other, _, _ := webpush.GenerateVAPIDKeys()
	f.fake.RequireVAPIDKey(other)
	pe := outcome(t, f.sender.Send(context.Background(), f.device(), message()), push.Failed)
	if pe.Status != http.StatusForbidden || len(f.fake.Failures()) != 1 {
		t.Errorf("status %d failures %q", pe.Status, f.fake.Failures())
	}
}

func TestFakeRejectsWrongSubscriptionKeys(t *testing.T) {
	f := setup(t, "ops@example.com")
	d := f.device()
	_, d.P256dh, _ = f.fake.NewSubscription() // encrypt for another subscription's key
	pe := outcome(t, f.sender.Send(context.Background(), d, message()), push.Failed)
	if pe.Status != http.StatusBadRequest || len(f.fake.Failures()) != 1 {
		t.Errorf("status %d failures %q", pe.Status, f.fake.Failures())
	}
}

func TestDefaultClientRefusesLoopbackEndpoint(t *testing.T) {
	fake := pushtest.NewWebPushServer(t)
	pub, priv, _ := webpush.GenerateVAPIDKeys()
	s, err := webpush.New(webpush.Options{PublicKey: pub, PrivateKey: priv, Subject: "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ep, p256dh, auth := fake.NewSubscription()
	d := &push.Device{Endpoint: ep, P256dh: p256dh, Auth: auth}
	pe := outcome(t, s.Send(context.Background(), d, message()), push.Failed)
	if !errors.Is(pe, safedial.ErrForbidden) || fake.Requests() != 0 {
		t.Fatalf("err %v, %d requests reached the fake", pe, fake.Requests())
	}

	// With loopback allowed (HERALD_PUSH_ALLOW_PRIVATE) the same guard lets it through.
	tr := safedial.Transport([]string{"127.0.0.1/32"})
	tr.TLSClientConfig = &tls.Config{RootCAs: fake.CertPool()}
	s, _ = webpush.New(webpush.Options{PublicKey: pub, PrivateKey: priv, Subject: "ops@example.com", Client: &http.Client{Transport: tr}})
	if err := s.Send(context.Background(), d, message()); err != nil {
		t.Fatal(err)
	}
	fake.AssertNoFailures(t)
}

func TestNewRejectsBadKeys(t *testing.T) {
	pub, priv, _ := webpush.GenerateVAPIDKeys()
	otherPub, _, _ := webpush.GenerateVAPIDKeys()
	for name, o := range map[string]webpush.Options{
		"mismatched pair": {PublicKey: otherPub, PrivateKey: priv, Subject: "a@b.c"},
		"garbage public":  {PublicKey: "nope", PrivateKey: priv, Subject: "a@b.c"},
		"garbage private": {PublicKey: pub, PrivateKey: "!!", Subject: "a@b.c"},
		"no subject":      {PublicKey: pub, PrivateKey: priv},
	} {
		if _, err := webpush.New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	f := setup(b, "ops@example.com")
	d := f.device()
	m := message()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := f.sender.Send(ctx, d, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
	f.fake.AssertNoFailures(b)
}

// BenchmarkSendParallel sends from GOMAXPROCS×4 goroutines at once, as a
// dispatcher with several workers would.
func BenchmarkSendParallel(b *testing.B) {
	f := setup(b, "ops@example.com")
	d, m := f.device(), message()
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := f.sender.Send(context.Background(), d, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
	f.fake.AssertNoFailures(b)
}

// TestDNSFailureAtSendIsRetried: the endpoint's name is resolved when it
// is dialled; a failed lookup (even "no such host", which a flaky resolver
// also says) is a temporary failure to retry with backoff, never a gone
// device nor a permanent failure.
func TestDNSFailureAtSendIsRetried(t *testing.T) {
	fake := pushtest.NewWebPushServer(t)
	pub, priv, _ := webpush.GenerateVAPIDKeys()
	tr := safedial.Transport([]string{"127.0.0.1/32"})
	tr.TLSClientConfig = &tls.Config{RootCAs: fake.CertPool()}
	dial := tr.DialContext
	var mu sync.Mutex
	failures := 2
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		fail := failures > 0
		failures--
		mu.Unlock()
		if fail {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "push.example.com", IsNotFound: true}}
		}
		return dial(ctx, network, addr)
	}
	tr.DisableKeepAlives = true
	s, err := webpush.New(webpush.Options{PublicKey: pub, PrivateKey: priv, Subject: "ops@example.com", Client: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	ep, p256dh, auth := fake.NewSubscription()
	d := &push.Device{ID: "dev_1", User: "alice", Platform: push.PlatformWebPush, Endpoint: ep, P256dh: p256dh, Auth: auth}
	outcome(t, s.Send(context.Background(), d, message()), push.Retry)

	retrying := push.Retrying(s, push.Policy{MaxAttempts: 3, Base: time.Millisecond, Cap: 10 * time.Millisecond})
	if err := retrying.Send(context.Background(), d, message()); err != nil {
		t.Fatalf("after a failed lookup and a retry: %v", err)
	}
	if n := len(fake.Pushes()); n != 1 {
		t.Fatalf("%d pushes, want 1", n)
	}
	fake.AssertNoFailures(t)
}
