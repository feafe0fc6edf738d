package hook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/hook"
	"github.com/heraldhq/herald/pkg/push/safedial"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	key, err := hook.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	got := hook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// receiver is an operator's endpoint that verifies signatures itself.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	bad      int
	statuses []int // answers to give, then 200
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	key, _ := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(body)))
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		r.mu.Lock()
		defer r.mu.Unlock()
		if !hmac.Equal([]byte(req.Header.Get("webhook-signature")), []byte(want)) {
			r.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if len(r.statuses) > 0 {
			st := r.statuses[0]
			r.statuses = r.statuses[1:]
			if st == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "2")
			}
			w.WriteHeader(st)
			return
		}
		r.bodies = append(r.bodies, body)
		r.headers = append(r.headers, req.Header.Clone())
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) state() (bodies [][]byte, headers []http.Header, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies, r.headers, r.bad
}

func (r *receiver) answer(statuses ...int) {
	r.mu.Lock()
	r.statuses = append(r.statuses, statuses...)
	r.mu.Unlock()
}

func sender(t *testing.T, url string) *hook.Sender {
	t.Helper()
	s, err := hook.New(hook.Options{URL: url, Secret: secret, Client: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func device() *push.Device {
	return &push.Device{ID: "dev_1", User: "alice", Platform: push.PlatformWebhook, Token: "secret-token", Locale: "de"}
}

func message() *push.Message {
	return &push.Message{ID: "01JD0001", User: "alice", Title: "Bob", Body: "Hello!", Tag: "c1", TTL: time.Minute}
}

func TestSendPostsSignedEvent(t *testing.T) {
	r := newReceiver(t)
	start := time.Now().Unix()
	if err := sender(t, r.URL).Send(context.Background(), device(), message()); err != nil {
		t.Fatal(err)
	}
	bodies, headers, bad := r.state()
	if bad != 0 || len(bodies) != 1 {
		t.Fatalf("bad signatures %d, deliveries %d", bad, len(bodies))
	}
	h := headers[0]
	if h.Get("webhook-id") != "01JD0001_dev_1" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	if ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64); ts < start || ts > time.Now().Unix() {
		t.Errorf("webhook-timestamp %s is not now in seconds", h.Get("webhook-timestamp"))
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	if string(ev["type"]) != `"push"` || string(ev["device"]) != `{"id":"dev_1","platform":"webhook","user":"alice","locale":"de"}` || string(ev["ttl"]) != "60" {
		t.Errorf("event %s", bodies[0])
	}
	var m push.Message
	if err := json.Unmarshal(ev["message"], &m); err != nil || m.ID != "01JD0001" || m.Title != "Bob" || m.Tag != "c1" {
		t.Errorf("message %s", ev["message"])
	}
}

func TestOutcomes(t *testing.T) {
	r := newReceiver(t)
	s := sender(t, r.URL)
	for _, tc := range []struct {
		status int
		want   push.Outcome
	}{
		{http.StatusGone, push.Gone}, {http.StatusNotFound, push.Gone},
		{http.StatusTooManyRequests, push.Retry}, {http.StatusBadGateway, push.Retry},
		{http.StatusBadRequest, push.Failed},
	} {
		r.answer(tc.status)
		err := s.Send(context.Background(), device(), message())
		var pe *push.Error
		if !errors.As(err, &pe) || pe.Outcome != tc.want || pe.Status != tc.status {
			t.Errorf("status %d: %v, want %s", tc.status, err, tc.want)
		}
		if tc.status == http.StatusTooManyRequests && pe.RetryAfter != 2*time.Second {
			t.Errorf("RetryAfter %s", pe.RetryAfter)
		}
	}
	if _, _, bad := r.state(); bad != 0 {
		t.Errorf("%d bad signatures", bad)
	}
}

func TestRetryingSenderRetries429ThenDeliversOnce(t *testing.T) {
	r := newReceiver(t)
	r.answer(http.StatusTooManyRequests)
	s := push.Retrying(sender(t, r.URL), push.Policy{MaxAttempts: 3, Base: time.Millisecond, Cap: 10 * time.Millisecond})
	if err := s.Send(context.Background(), device(), message()); err != nil {
		t.Fatal(err)
	}
	if bodies, _, _ := r.state(); len(bodies) != 1 {
		t.Fatalf("%d deliveries", len(bodies))
	}
}

func TestWrongSecretIsRejectedByReceiver(t *testing.T) {
	r := newReceiver(t)
	s, _ := hook.New(hook.Options{URL: r.URL, Secret: "whsec_" + base64.StdEncoding.EncodeToString([]byte("other key")), Client: &http.Client{}})
	err := s.Send(context.Background(), device(), message())
	if _, _, bad := r.state(); bad != 1 {
		t.Fatalf("err %v, bad signatures %d", err, bad)
	}
	if o, _ := push.OutcomeOf(err); o != push.Failed {
		t.Fatalf("err %v", err)
	}
}

func TestDefaultClientRefusesLoopback(t *testing.T) {
	r := newReceiver(t)
	s, err := hook.New(hook.Options{URL: r.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), device(), message())
	if o, _ := push.OutcomeOf(err); o != push.Failed || !errors.Is(err, safedial.ErrForbidden) {
		t.Fatalf("err %v", err)
	}
	if bodies, _, _ := r.state(); len(bodies) != 0 {
		t.Fatal("request reached the loopback receiver")
	}
}

func TestNewValidates(t *testing.T) {
	for name, o := range map[string]hook.Options{
		"no url":         {Secret: secret},
		"no prefix":      {URL: "https://example.com", Secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		"not base64":     {URL: "https://example.com", Secret: "whsec_!!!"},
		"empty after it": {URL: "https://example.com", Secret: "whsec_"},
	} {
		if _, err := hook.New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer srv.Close()
	s, err := hook.New(hook.Options{URL: srv.URL, Secret: secret, Client: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	d, m := device(), message()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Send(ctx, d, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
}
