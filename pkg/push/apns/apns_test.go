package apns_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sideshow/apns2/certificate"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/apns"
	"github.com/heraldhq/herald/pkg/push/pushtest"
)

const (
	keyID  = "ABC123DEFG"
	teamID = "TEAM123456"
	topic  = "com.example.herald"
	token  = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
)

type fixture struct {
	fake   *pushtest.APNsServer
	sender *apns.Sender
	key    *ecdsa.PrivateKey
}

func setup(t testing.TB) *fixture {
	t.Helper()
	p8, key, err := pushtest.NewP8Key()
	if err != nil {
		t.Fatal(err)
	}
	fake := pushtest.NewAPNsServer(t, keyID, teamID, &key.PublicKey)
	s, err := apns.New(apns.Options{KeyP8: p8, KeyID: keyID, TeamID: teamID, Topic: topic, Host: fake.URL(), TLSConfig: fake.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &fixture{fake: fake, sender: s, key: key}
}

func device() *push.Device {
	return &push.Device{ID: "dev_1", User: "alice", Platform: push.PlatformAPNs, Token: token}
}

func message() *push.Message {
	return &push.Message{
		ID: "01JD0001", User: "alice", Title: "Bob", Body: "Hello!", URL: "/chat/c1", Tag: "c1",
		Urgency: "normal", Data: map[string]any{"conversationId": "c1"}, TTL: time.Hour,
		Created: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
	}
}

func outcome(t *testing.T, err error, want push.Outcome) *push.Error {
	t.Helper()
	var pe *push.Error
	if !errors.As(err, &pe) || pe.Outcome != want {
		t.Fatalf("err = %v, want outcome %s", err, want)
	}
	return pe
}

type payload struct {
	APS struct {
		Alert *struct {
			Title, Body string
		} `json:"alert"`
		ThreadID         string `json:"thread-id"`
		Badge            *int   `json:"badge"`
		ContentAvailable int    `json:"content-available"`
	} `json:"aps"`
	Herald struct {
		Type         string
		ID, Tag      string
		IDs          []string
		Badge        *int
		Notification *push.Message
	} `json:"herald"`
}

func TestSendDeliversAlertWithTokenAuth(t *testing.T) {
	f := setup(t)
	if err := f.sender.Send(context.Background(), device(), message()); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	ps := f.fake.Pushes()
	if len(ps) != 1 {
		t.Fatalf("%d pushes", len(ps))
	}
	p := ps[0]
	if p.Token != token || p.Topic != topic || p.PushType != "alert" || p.Priority != 10 || p.CollapseID != "c1" {
		t.Errorf("token %q topic %q type %q priority %d collapse %q", p.Token, p.Topic, p.PushType, p.Priority, p.CollapseID)
	}
	if d := time.Until(time.Unix(p.Expiration, 0)); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("expiration in %s, want the 1 h TTL", d)
	}
	var pl payload
	if err := p.JSON(&pl); err != nil {
		t.Fatal(err)
	}
	if pl.APS.Alert == nil || pl.APS.Alert.Title != "Bob" || pl.APS.Alert.Body != "Hello!" || pl.APS.ThreadID != "c1" {
		t.Errorf("aps %+v", pl.APS)
	}
	if pl.Herald.Type != "notification" || pl.Herald.Notification.ID != "01JD0001" || pl.Herald.Notification.URL != "/chat/c1" {
		t.Errorf("herald %+v", pl.Herald)
	}
}

func TestRetractIsBackgroundPush(t *testing.T) {
	f := setup(t)
	if err := f.sender.Send(context.Background(), device(), &push.Message{ID: "n1", Tag: "c1", Retract: true}); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	p := f.fake.Pushes()[0]
	var pl payload
	_ = p.JSON(&pl)
	if p.PushType != "background" || p.Priority != 5 || pl.APS.ContentAvailable != 1 || pl.APS.Alert != nil ||
		pl.Herald.Type != "retract" || pl.Herald.ID != "n1" || pl.Herald.Tag != "c1" {
		t.Errorf("type %q priority %d payload %s", p.PushType, p.Priority, p.Payload)
	}
}

// TestClearingPushSetsTheBadgeAndReplacesTheShownOne: a read elsewhere
// reaches an iPhone as a badge-only alert push (shows nothing, sets the
// icon's count) under the conversation's collapse id, and wakes the app
// with the ids to remove; an alert carries the unread total too.
func TestClearingPushSetsTheBadgeAndReplacesTheShownOne(t *testing.T) {
	f := setup(t)
	two, zero := 2, 0
	m := message()
	m.Badge = &two
	if err := f.sender.Send(context.Background(), device(), m); err != nil {
		t.Fatal(err)
	}
	clear := &push.Message{ID: "read:1", Clear: []string{"01JD0001"}, Tag: "c1", Badge: &zero}
	if err := f.sender.Send(context.Background(), device(), clear); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	ps := f.fake.Pushes()
	var alert, cleared payload
	_ = ps[0].JSON(&alert)
	_ = ps[1].JSON(&cleared)
	if alert.APS.Badge == nil || *alert.APS.Badge != 2 || alert.APS.Alert == nil || *alert.Herald.Badge != 2 {
		t.Errorf("alert payload %s", ps[0].Payload)
	}
	p := ps[1]
	if p.PushType != "alert" || p.Priority != 5 || p.CollapseID != ps[0].CollapseID || p.CollapseID == "" {
		t.Errorf("clearing push: type %q priority %d collapse %q (alert's %q)", p.PushType, p.Priority, p.CollapseID, ps[0].CollapseID)
	}
	if cleared.APS.Alert != nil || cleared.APS.Badge == nil || *cleared.APS.Badge != 0 || cleared.APS.ContentAvailable != 1 ||
		cleared.Herald.Type != "read" || len(cleared.Herald.IDs) != 1 || cleared.Herald.IDs[0] != "01JD0001" {
		t.Errorf("clearing payload %s", p.Payload)
	}
	// Without a known total it is a plain background push.
	if err := f.sender.Send(context.Background(), device(), &push.Message{ID: "read:2", Clear: []string{"n9"}}); err != nil {
		t.Fatal(err)
	}
	if p := f.fake.Pushes()[2]; p.PushType != "background" || p.Priority != 5 {
		t.Errorf("clearing push without badge: type %q priority %d", p.PushType, p.Priority)
	}
	f.fake.AssertNoFailures(t)
}

func TestLowUrgencyLongTagAndLargeBody(t *testing.T) {
	f := setup(t)
	m := message()
	m.Urgency = "low"
	m.Tag = strings.Repeat("conversation-", 10)
	m.Body = strings.Repeat("✓", 3000)
	if err := f.sender.Send(context.Background(), device(), m); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	p := f.fake.Pushes()[0]
	if p.Priority != 5 || len(p.CollapseID) != 64 || p.CollapseID != push.CollapseID(m.Tag) || len(p.Payload) > apns.MaxPayload {
		t.Errorf("priority %d collapse %q payload %d bytes", p.Priority, p.CollapseID, len(p.Payload))
	}
}

func TestGoneOnUnregisteredAndBadDeviceToken(t *testing.T) {
	f := setup(t)
	f.fake.Unregister(token)
	pe := outcome(t, f.sender.Send(context.Background(), device(), message()), push.Gone)
	if pe.Status != http.StatusGone || pe.Reason != "Unregistered" {
		t.Errorf("status %d reason %q", pe.Status, pe.Reason)
	}
	d := device()
	d.Token = "not-a-token"
	pe = outcome(t, f.sender.Send(context.Background(), d, message()), push.Gone)
	if pe.Status != http.StatusBadRequest || pe.Reason != "BadDeviceToken" {
		t.Errorf("status %d reason %q", pe.Status, pe.Reason)
	}
	f.fake.AssertNoFailures(t)
}

func TestRetryOn429And503(t *testing.T) {
	f := setup(t)
	f.fake.Answer(token, 1, http.StatusTooManyRequests, "TooManyRequests", "")
	f.fake.Answer(token, 1, http.StatusServiceUnavailable, "ServiceUnavailable", "")
	for _, want := range []int{429, 503} {
		pe := outcome(t, f.sender.Send(context.Background(), device(), message()), push.Retry)
		if pe.Status != want {
			t.Errorf("status %d, want %d", pe.Status, want)
		}
	}
	f.fake.Answer(token, 1, http.StatusBadRequest, "BadTopic", "")
	outcome(t, f.sender.Send(context.Background(), device(), message()), push.Failed)
}

func TestRetryingSenderRetries429ThenDeliversOnce(t *testing.T) {
	f := setup(t)
	f.fake.Answer(token, 1, http.StatusTooManyRequests, "TooManyRequests", "")
	s := push.Retrying(f.sender, push.Policy{MaxAttempts: 3, Base: time.Millisecond, Cap: 10 * time.Millisecond})
	if err := s.Send(context.Background(), device(), message()); err != nil {
		t.Fatal(err)
	}
	if len(f.fake.Pushes()) != 1 || f.fake.Requests() != 2 {
		t.Fatalf("%d pushes in %d requests", len(f.fake.Pushes()), f.fake.Requests())
	}
}

func TestFakeRejectsTokenSignedWithAnotherKey(t *testing.T) {
	f := setup(t)
	otherP8, _, _ := pushtest.NewP8Key()
	for name, o := range map[string]apns.Options{
		"other key":  {KeyP8: otherP8, KeyID: keyID, TeamID: teamID},
		"other kid":  {KeyP8: mustP8(t, f.key), KeyID: "ZZZ", TeamID: teamID},
		"other team": {KeyP8: mustP8(t, f.key), KeyID: keyID, TeamID: "OTHERTEAM1"},
	} {
		o.Topic, o.Host, o.TLSConfig = topic, f.fake.URL(), f.fake.TLSConfig()
		s, err := apns.New(o)
		if err != nil {
			t.Fatal(err)
		}
		pe := outcome(t, s.Send(context.Background(), device(), message()), push.Failed)
		if pe.Status != http.StatusForbidden || pe.Reason != "InvalidProviderToken" {
			t.Errorf("%s: status %d reason %q", name, pe.Status, pe.Reason)
		}
		s.Close()
	}
	if n := len(f.fake.Failures()); n != 3 || len(f.fake.Pushes()) != 0 {
		t.Errorf("%d failures recorded, %d pushes", n, len(f.fake.Pushes()))
	}
}

func TestFakeRejectsTamperedAndStaleJWT(t *testing.T) {
	f := setup(t)
	client := f.fake.Client()
	sign := func(iat time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": teamID, "iat": iat.Unix()})
		tok.Header["kid"] = keyID
		s, err := tok.SignedString(f.key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(time.Now())
	parts := strings.Split(good, ".")
	parts[1] = strings.TrimRight(parts[1], "=") + "x" // claims no longer match the signature
	for name, tc := range map[string]struct {
		bearer string
		reason string
	}{
		"valid":    {good, ""},
		"tampered": {strings.Join(parts, "."), "InvalidProviderToken"},
		"stale":    {sign(time.Now().Add(-2 * time.Hour)), "ExpiredProviderToken"},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.fake.URL()+"/3/device/"+token,
			bytes.NewReader([]byte(`{"aps":{"alert":"hi"}}`)))
		req.Header.Set("authorization", "bearer "+tc.bearer)
		req.Header.Set("apns-topic", topic)
		req.Header.Set("apns-push-type", "alert")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusOK
		if tc.reason != "" {
			want = http.StatusForbidden
		}
		if resp.StatusCode != want || resp.ProtoMajor != 2 {
			t.Errorf("%s: %s status %d, want %d over HTTP/2", name, resp.Proto, resp.StatusCode, want)
		}
	}
	if n := len(f.fake.Failures()); n != 2 {
		t.Errorf("failures %q", f.fake.Failures())
	}
}

func mustP8(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := pushtest.EncodeP8(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadP12(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/apns-test.p12")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCertificateAuth(t *testing.T) {
	p12 := loadP12(t)
	fake := pushtest.NewAPNsServer(t, keyID, teamID, nil)
	s, err := apns.New(apns.Options{CertP12: p12, CertPassword: "herald", Topic: topic, Host: fake.URL(), TLSConfig: fake.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Not trusted yet: APNs answers 403 BadCertificate.
	pe := outcome(t, s.Send(context.Background(), device(), message()), push.Failed)
	if pe.Reason != "BadCertificate" {
		t.Errorf("reason %q", pe.Reason)
	}
	fake.Reset()

	cert, err := certificate.FromP12Bytes(p12, "herald")
	if err != nil {
		t.Fatal(err)
	}
	fake.TrustClientCA(cert.Leaf)
	if err := s.Send(context.Background(), device(), message()); err != nil {
		t.Fatal(err)
	}
	fake.AssertNoFailures(t)
	if cn := fake.Pushes()[0].ClientCert; cn != "Apple Push Services: com.example.herald" {
		t.Errorf("client cert CN %q", cn)
	}
	if got := s.NotAfter(); got.Year() != 2126 {
		t.Errorf("NotAfter %s", got)
	}
}

func TestCertificateNotAfter(t *testing.T) {
	na, err := apns.CertificateNotAfter(loadP12(t), "herald")
	if err != nil {
		t.Fatal(err)
	}
	if na.Year() != 2126 {
		t.Errorf("NotAfter %s", na)
	}
	if _, err := apns.CertificateNotAfter(loadP12(t), "wrong"); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestNewValidates(t *testing.T) {
	p8, _, _ := pushtest.NewP8Key()
	for name, o := range map[string]apns.Options{
		"no auth":      {Topic: topic},
		"both auths":   {KeyP8: p8, KeyID: keyID, TeamID: teamID, CertP12: []byte("x"), Topic: topic},
		"no topic":     {KeyP8: p8, KeyID: keyID, TeamID: teamID},
		"no key id":    {KeyP8: p8, TeamID: teamID, Topic: topic},
		"bad p8":       {KeyP8: []byte("nope"), KeyID: keyID, TeamID: teamID, Topic: topic},
		"bad password": {CertP12: loadP12(t), CertPassword: "nope", Topic: topic},
	} {
		if _, err := apns.New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	f := setup(b)
	d, m := device(), message()
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
	f := setup(b)
	d, m := device(), message()
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
