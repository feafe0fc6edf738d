package fcm_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/fcm"
	"github.com/heraldhq/herald/pkg/push/pushtest"
)

const project = "herald-test"

type fixture struct {
	fake   *pushtest.FCMServer
	sender *fcm.Sender
	sa     []byte
}

func setup(t testing.TB) *fixture {
	t.Helper()
	fake := pushtest.NewFCMServer(t, project)
	sa := fake.NewServiceAccount()
	s, err := fcm.New(context.Background(), fcm.Options{CredentialsJSON: sa, Endpoint: fake.URL(), HTTPClient: fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{fake: fake, sender: s, sa: sa}
}

func device(token string) *push.Device {
	return &push.Device{ID: "dev_1", User: "alice", Platform: push.PlatformFCM, Token: token}
}

func message() *push.Message {
	return &push.Message{
		ID: "01JD0001", User: "alice", Title: "Bob", Body: "Hello!", Icon: "https://example.com/b.png",
		URL: "https://chat.example.com/c1", Tag: "conversation:c1", Urgency: "high", TTL: 90 * time.Second,
		Data: map[string]any{"conversationId": "c1"},
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

func TestSendDeliversV1MessageAfterTokenExchange(t *testing.T) {
	f := setup(t)
	for range 2 {
		if err := f.sender.Send(context.Background(), device("tok-1"), message()); err != nil {
			t.Fatal(err)
		}
	}
	f.fake.AssertNoFailures(t)
	if n := f.fake.TokensIssued(); n != 1 {
		t.Errorf("%d access tokens issued, want 1 (cached)", n)
	}
	sends := f.fake.Sends()
	if len(sends) != 2 {
		t.Fatalf("%d sends", len(sends))
	}
	m := sends[0].Message
	if m.Token != "tok-1" || m.Notification == nil || m.Notification.Title != "Bob" || m.Notification.Body != "Hello!" {
		t.Errorf("token %q notification %+v", m.Token, m.Notification)
	}
	var fr struct {
		Type         string
		Notification push.Message
	}
	if err := json.Unmarshal([]byte(m.Data["herald"]), &fr); err != nil || fr.Type != "notification" || fr.Notification.ID != "01JD0001" {
		t.Errorf("data.herald %q: %v", m.Data["herald"], err)
	}
	if m.Data["id"] != "01JD0001" || m.Data["url"] != "https://chat.example.com/c1" {
		t.Errorf("data %v", m.Data)
	}
	if a := m.Android; a == nil || a.CollapseKey != "conversation:c1" || a.Priority != "high" || a.TTL != "90s" || a.Notification["tag"] != "conversation:c1" {
		t.Errorf("android %+v", a)
	}
	if w := m.Webpush; w == nil || w.Headers["Topic"] != push.Topic("conversation:c1") || w.Headers["Urgency"] != "high" || w.Headers["TTL"] != "90" {
		t.Errorf("webpush %+v", w)
	}
	if a := m.APNS; a == nil || a.Headers["apns-collapse-id"] != "conversation:c1" || a.Headers["apns-priority"] != "10" || a.Headers["apns-push-type"] != "alert" {
		t.Errorf("apns %+v", a)
	}
}

func TestRetractIsDataOnly(t *testing.T) {
	f := setup(t)
	if err := f.sender.Send(context.Background(), device("tok-1"), &push.Message{ID: "n1", Tag: "c1", Retract: true}); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	m := f.fake.Sends()[0].Message
	if m.Notification != nil || m.Data["herald"] != `{"type":"retract","id":"n1","tag":"c1"}` ||
		m.APNS.Headers["apns-push-type"] != "background" || m.APNS.Headers["apns-priority"] != "5" {
		t.Errorf("message %+v", m)
	}
}

// TestBadgeAndClearingPush: the unread total goes into the data, the
// Android notification count and the iOS badge; a clearing push is data
// only, which an iOS app receives as a badge-only push.
func TestBadgeAndClearingPush(t *testing.T) {
	f := setup(t)
	four, three := 4, 3
	m := message()
	m.Badge = &four
	if err := f.sender.Send(context.Background(), device("tok-1"), m); err != nil {
		t.Fatal(err)
	}
	if err := f.sender.Send(context.Background(), device("tok-1"), &push.Message{ID: "read:1", Clear: []string{"n1", "n2"}, Tag: "c1", Badge: &three}); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	ss := f.fake.Sends()
	n, c := ss[0].Message, ss[1].Message
	aps := func(m pushtest.FCMMessage) map[string]any { a, _ := m.APNS.Payload["aps"].(map[string]any); return a }
	if n.Data["badge"] != "4" || n.Android.Notification["notification_count"] != float64(4) || aps(n)["badge"] != float64(4) {
		t.Errorf("notification with badge: %s", ss[0].Raw)
	}
	if c.Notification != nil || c.Data["badge"] != "3" || c.Data["herald"] != `{"type":"read","ids":["n1","n2"],"tag":"c1","badge":3}` ||
		c.Android.Notification != nil || aps(c)["badge"] != float64(3) || aps(c)["content-available"] != float64(1) ||
		c.APNS.Headers["apns-push-type"] != "alert" || c.APNS.Headers["apns-priority"] != "5" {
		t.Errorf("clearing push: %s", ss[1].Raw)
	}
}

func TestLargeBodyIsCutToFit(t *testing.T) {
	f := setup(t)
	m := message()
	m.Body = strings.Repeat("body ", 2000)
	if err := f.sender.Send(context.Background(), device("tok-1"), m); err != nil {
		t.Fatal(err)
	}
	f.fake.AssertNoFailures(t)
	if raw := f.fake.Sends()[0].Raw; len(raw) > 4096 {
		t.Errorf("request body %d bytes", len(raw))
	}
}

func TestGoneOnUnregisteredAndSenderIDMismatch(t *testing.T) {
	f := setup(t)
	f.fake.Unregister("tok-old")
	pe := outcome(t, f.sender.Send(context.Background(), device("tok-old"), message()), push.Gone)
	if pe.Status != http.StatusNotFound || pe.Reason != "UNREGISTERED" {
		t.Errorf("status %d reason %q", pe.Status, pe.Reason)
	}
	f.fake.Answer("tok-2", 1, http.StatusForbidden, "SENDER_ID_MISMATCH", "")
	outcome(t, f.sender.Send(context.Background(), device("tok-2"), message()), push.Gone)
	f.fake.AssertNoFailures(t)
}

func TestRetryOnQuotaAndInternal(t *testing.T) {
	f := setup(t)
	f.fake.Answer("tok-1", 1, http.StatusTooManyRequests, "", "7")
	pe := outcome(t, f.sender.Send(context.Background(), device("tok-1"), message()), push.Retry)
	if pe.Status != 429 || pe.Reason != "QUOTA_EXCEEDED" || pe.RetryAfter != 7*time.Second {
		t.Errorf("status %d reason %q RetryAfter %s", pe.Status, pe.Reason, pe.RetryAfter)
	}
	f.fake.Answer("tok-1", 1, http.StatusInternalServerError, "", "")
	outcome(t, f.sender.Send(context.Background(), device("tok-1"), message()), push.Retry)
	f.fake.Answer("tok-1", 1, http.StatusBadRequest, "", "")
	pe = outcome(t, f.sender.Send(context.Background(), device("tok-1"), message()), push.Failed)
	if pe.Reason != "INVALID_ARGUMENT" {
		t.Errorf("reason %q", pe.Reason)
	}
}

func TestRetryingSenderRetries429ThenDeliversOnce(t *testing.T) {
	f := setup(t)
	f.fake.Answer("tok-1", 1, http.StatusTooManyRequests, "", "")
	s := push.Retrying(f.sender, push.Policy{MaxAttempts: 3, Base: time.Millisecond, Cap: 10 * time.Millisecond})
	if err := s.Send(context.Background(), device("tok-1"), message()); err != nil {
		t.Fatal(err)
	}
	if len(f.fake.Sends()) != 1 {
		t.Fatalf("%d sends", len(f.fake.Sends()))
	}
}

func TestSendEachReportsPerDevice(t *testing.T) {
	f := setup(t)
	f.fake.Unregister("tok-gone")
	errs, err := f.sender.SendEach(context.Background(), []*push.Device{device("tok-a"), device("tok-gone"), device("tok-b")}, message())
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("errs %v", errs)
	}
	if o, _ := push.OutcomeOf(errs[1]); o != push.Gone {
		t.Errorf("gone device: %v", errs[1])
	}
	if len(f.fake.Sends()) != 2 {
		t.Errorf("%d sends", len(f.fake.Sends()))
	}
}

func TestUnknownServiceAccountFailsAtTokenExchange(t *testing.T) {
	f := setup(t)
	other := pushtest.NewFCMServer(t, project)
	sa := other.NewServiceAccount()
	// Same project, but the account (and its key) is unknown to f's fake.
	var m map[string]any
	_ = json.Unmarshal(sa, &m)
	m["token_uri"] = f.fake.TokenURI()
	sa, _ = json.Marshal(m)
	s, err := fcm.New(context.Background(), fcm.Options{CredentialsJSON: sa, Endpoint: f.fake.URL(), HTTPClient: f.fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	pe := outcome(t, s.Send(context.Background(), device("tok-1"), message()), push.Failed)
	if pe.Reason != "OAuth" || len(f.fake.Sends()) != 0 || len(f.fake.Failures()) == 0 {
		t.Errorf("reason %q sends %d failures %q", pe.Reason, len(f.fake.Sends()), f.fake.Failures())
	}
}

func TestFakeRejectsTamperedAssertionAndUnknownBearer(t *testing.T) {
	f := setup(t)
	var sa struct {
		PrivateKey  string `json:"private_key"`
		ClientEmail string `json:"client_email"`
	}
	_ = json.Unmarshal(f.sa, &sa)
	key, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(sa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	assert := func(aud, scope string) string {
		now := time.Now()
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": sa.ClientEmail, "aud": aud, "scope": scope, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := assert(f.fake.TokenURI(), fcm.Scope)
	tampered := strings.Split(good, ".")
	tampered[2] = strings.Repeat("A", len(tampered[2]))
	client := f.fake.Client()
	for name, tc := range map[string]struct {
		assertion string
		status    int
	}{
		"valid":        {good, 200},
		"tampered":     {strings.Join(tampered, "."), 400},
		"wrong aud":    {assert("https://oauth2.googleapis.com/token", fcm.Scope), 400},
		"wrong scope":  {assert(f.fake.TokenURI(), "https://www.googleapis.com/auth/userinfo.email"), 400},
		"no assertion": {"", 400},
	} {
		resp, err := client.PostForm(f.fake.TokenURI(), url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {tc.assertion},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", name, resp.StatusCode, tc.status)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, f.fake.Endpoint()+"/projects/"+project+"/messages:send",
		strings.NewReader(`{"message":{"token":"t","data":{"a":"b"}}}`))
	req.Header.Set("Authorization", "Bearer ya29.made-up")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("made-up bearer: status %d, want 401", resp.StatusCode)
	}
	if n := len(f.fake.Failures()); n != 5 {
		t.Errorf("%d failures recorded, want 5: %q", n, f.fake.Failures())
	}
}

func TestNewValidates(t *testing.T) {
	for name, creds := range map[string]string{
		"not json":       "nope",
		"not an account": `{"type":"authorized_user","project_id":"p"}`,
		"no project":     `{"type":"service_account"}`,
	} {
		if _, err := fcm.New(context.Background(), fcm.Options{CredentialsJSON: []byte(creds)}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	f := setup(b)
	d, m := device("tok-1"), message()
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
	d, m := device("tok-1"), message()
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
