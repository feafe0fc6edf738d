package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/webhook/amity"
	"github.com/heraldhq/herald/pkg/webhook/cometchat"
	"github.com/heraldhq/herald/pkg/webhook/notifly"
	"github.com/heraldhq/herald/pkg/webhook/sendbird"
	"github.com/heraldhq/herald/pkg/webhook/standard"
	"github.com/heraldhq/herald/pkg/webhook/stream"
	"github.com/heraldhq/herald/pkg/webhook/talkjs"
)

const (
	talkjsSecret  = "talkjs-test-secret"
	amitySecret   = "amity-test-secret"
	notiflySecret = "notifly-test-secret"
	ccUser        = "cc-user"
	ccPassword    = "cc-password"
	// whsec_ + base64("herald-standard-webhooks-key!")
	standardSecret = "whsec_aGVyYWxkLXN0YW5kYXJkLXdlYmhvb2tzLWtleSE="
	streamSecret   = "stream-test-secret"
	sendbirdToken  = "sendbird-test-token"
)

func webhookConfig(c *configT) {
	c.TalkJSSecret = talkjsSecret
	c.AmitySecret = amitySecret
	c.NotiflySecret = notiflySecret
	c.CometChatUser, c.CometChatPassword = ccUser, ccPassword
	c.WebhookSecret = standardSecret
	c.StreamSecret, c.SendbirdToken = streamSecret, sendbirdToken
	c.WebhookRetryAfter = 500 * time.Millisecond
	c.ThrottleWindow = 0
}

// signed builds a provider's request headers for body, as the platform
// signs it, at time at.
func signed(t *testing.T, provider string, body []byte, at time.Time) http.Header {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	switch provider {
	case "talkjs":
		sig, ts := talkjs.Sign(talkjsSecret, at, body)
		h.Set("X-TalkJS-Signature", sig)
		h.Set("X-TalkJS-Timestamp", ts)
	case "amity":
		h.Set("x-amity-signature", amity.Sign(amitySecret, body))
	case "notifly":
		h.Set("x-notifly-signature", notifly.Sign(notiflySecret, body))
	case "cometchat":
		h.Set("Authorization", cometchat.BasicAuth(ccUser, ccPassword))
	case "stream":
		h.Set("X-Signature", stream.Sign(streamSecret, body))
	case "sendbird":
		h.Set("x-sendbird-signature", sendbird.Sign(sendbirdToken, body))
	case "herald":
		id := fmt.Sprintf("msg_%x", at.UnixNano())
		sig, err := standard.Sign(standardSecret, id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", fmt.Sprint(at.Unix()))
		h.Set("webhook-signature", sig)
	default:
		t.Fatalf("no signer for %s", provider)
	}
	return h
}

func (n *testNode) postWebhook(provider string, body []byte, h http.Header) (int, map[string]any) {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.ts.URL+"/webhooks/"+provider, bytes.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

type inboxEntry struct {
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	Title string          `json:"title"`
	Body  string          `json:"body"`
	Tag   string          `json:"tag"`
	Data  json.RawMessage `json:"data"`
}

func (n *testNode) inbox(user string) []inboxEntry {
	n.t.Helper()
	status, body := n.do(http.MethodGet, "/v1/notifications", mintToken(n.t, user), nil)
	if status != http.StatusOK {
		n.t.Fatalf("inbox of %s: %d %s", user, status, body)
	}
	var resp struct {
		Notifications []inboxEntry `json:"notifications"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		n.t.Fatal(err)
	}
	return resp.Notifications
}

// webhookFixtures are one realistic message event per provider, from bob
// in conversation "c1" whose other members are alice and carol (carol
// asked not to be notified where the provider can say so).
var webhookFixtures = map[string]struct {
	body    string
	members []string // set through the API when the event names no recipients
	want    []string
}{
	"talkjs": {
		body: `{"id":"evt_tj_1","createdAt":1764064800000,"type":"message.sent","data":{
			"conversation":{"id":"c1","subject":"Trip","participants":{"alice":{"access":"ReadWrite","notify":true},"bob":{"access":"ReadWrite","notify":true},"carol":{"access":"Read","notify":false}}},
			"message":{"id":"m1","text":"Hello!","senderId":"bob","conversationId":"c1","type":"UserMessage","createdAt":1764064800000},
			"sender":{"id":"bob","name":"Bob"}}}`,
		want: []string{"alice"},
	},
	"cometchat": {
		body: `{"trigger":"push-notification-payload-generated","webhook":"custom","appId":"app1","region":"eu","data":{
			"to":{"uid":"alice"},
			"notificationDetails":{"title":"Bob","body":"Hello!","sender":"bob","senderName":"Bob","receiver":"alice","receiverType":"user","tag":"m1","conversationId":"bob_user_alice","type":"chat","sentAt":"1764064800000"}}}`,
		want: []string{"alice"},
	},
	"amity": {
		body:    `{"event":"message.didCreate","data":{"messages":[{"messageId":"m1","channelId":"c1","userId":"bob","type":"text","data":{"text":"Hello!"},"createdAt":"2026-11-25T10:00:00.000Z"}],"users":[{"userId":"bob","displayName":"Bob"}]}}`,
		members: []string{"alice", "bob", "carol"},
		want:    []string{"alice", "carol"},
	},
	"notifly": {
		body:    `{"id":"evt_nf_1","type":"message.created","payload":{"id":"m1","conversation_id":"c1","contact":{"id":"bob","username":"Bob"},"message":"Hello!","created_at":1764064800}}`,
		members: []string{"alice", "bob", "carol"},
		want:    []string{"alice", "carol"},
	},
	"herald": {
		body: `{"type":"notification.send","data":{"to":["alice","carol"],"title":"Bob","body":"Hello!","url":"/chat/c1","tag":"c1"}}`,
		want: []string{"alice", "carol"},
	},
}

func TestWebhookDeliversToExactlyTheRightUsers(t *testing.T) {
	for provider, fx := range webhookFixtures {
		t.Run(provider, func(t *testing.T) {
			n := startNode(t, webhookConfig)
			if fx.members != nil {
				if status, body := n.do(http.MethodPut, "/v1/conversations/c1/members", testAPIKey, map[string]any{"members": fx.members}); status != http.StatusOK {
					t.Fatalf("set members: %d %s", status, body)
				}
			}
			body := []byte(fx.body)
			status, out := n.postWebhook(provider, body, signed(t, provider, body, time.Now()))
			if status != http.StatusOK || out["status"] != "accepted" {
				t.Fatalf("webhook: %d %v", status, out)
			}
			for _, u := range fx.want {
				waitFor(t, u+" notified", func() bool { return len(n.inbox(u)) > 0 })
				got := n.inbox(u)
				if len(got) != 1 || !strings.Contains(got[0].Body, "Hello!") {
					t.Fatalf("%s's inbox = %+v, want one notification saying Hello!", u, got)
				}
			}
			for _, u := range []string{"alice", "bob", "carol"} {
				if !slices.Contains(fx.want, u) && len(n.inbox(u)) != 0 {
					t.Fatalf("%s was notified: %+v", u, n.inbox(u))
				}
			}
		})
	}
}

func TestWebhookRejections(t *testing.T) {
	n := startNode(t, webhookConfig)
	good := []byte(webhookFixtures["talkjs"].body)
	now := time.Now()
	tampered := signed(t, "talkjs", good, now)
	tampered.Set("X-TalkJS-Signature", strings.Repeat("A", 64))
	missing := http.Header{"Content-Type": {"application/json"}}
	wrongBasic := http.Header{"Authorization": {cometchat.BasicAuth(ccUser, "nope")}}
	big := append([]byte(`{"id":"x","type":"message.sent","data":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	big = append(big, `"}`...)
	unknown := []byte(`{"id":"evt_u","createdAt":1764064800000,"type":"user.updated","data":{}}`)
	malformed := []byte(`{"id":"evt_m","type":"message.sent","data":{`)
	noConv := []byte(`{"id":"evt_n","createdAt":1764064800000,"type":"message.sent","data":{"message":{"id":"m","text":"x","senderId":"bob"},"sender":{"id":"bob"}}}`)

	cases := []struct {
		name     string
		provider string
		body     []byte
		h        http.Header
		status   int
		code     string
	}{
		{"tampered signature", "talkjs", good, tampered, 401, "invalid_signature"},
		{"missing signature", "talkjs", good, missing, 401, "invalid_signature"},
		{"stale timestamp", "talkjs", good, signed(t, "talkjs", good, now.Add(-6*time.Minute)), 401, "stale_timestamp"},
		{"future timestamp", "herald", good, signed(t, "herald", good, now.Add(6*time.Minute)), 401, "stale_timestamp"},
		{"wrong basic auth", "cometchat", good, wrongBasic, 401, "invalid_signature"},
		{"wrong secret", "amity", good, http.Header{"x-amity-signature": {amity.Sign("other", good)}}, 401, "invalid_signature"},
		{"body over the limit", "talkjs", big, signed(t, "talkjs", big, now), 413, "body_too_large"},
		{"malformed JSON", "talkjs", malformed, signed(t, "talkjs", malformed, now), 400, "invalid_payload"},
		{"missing field", "talkjs", noConv, signed(t, "talkjs", noConv, now), 400, "invalid_payload"},
		{"unconfigured provider", "nope", good, missing, 404, "unknown_provider"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := n.postWebhook(tc.provider, tc.body, tc.h)
			errObj, _ := out["error"].(map[string]any)
			if status != tc.status || errObj["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, out, tc.status, tc.code)
			}
			if tc.name == "missing field" && !strings.Contains(fmt.Sprint(errObj["message"]), "conversation") {
				t.Fatalf("400 does not name the field: %v", errObj["message"])
			}
		})
	}
	t.Run("unknown event type is ignored", func(t *testing.T) {
		status, out := n.postWebhook("talkjs", unknown, signed(t, "talkjs", unknown, now))
		if status != 200 || out["status"] != "ignored" {
			t.Fatalf("got %d %v", status, out)
		}
	})
	time.Sleep(200 * time.Millisecond)
	for _, u := range []string{"alice", "bob", "carol"} {
		if got := n.inbox(u); len(got) != 0 {
			t.Fatalf("a rejected webhook notified %s: %+v", u, got)
		}
	}
}

func TestWebhookSameEventTwiceNotifiesOnce(t *testing.T) {
	n := startNode(t, webhookConfig)
	body := []byte(webhookFixtures["talkjs"].body)
	for i, want := range []string{"accepted", "duplicate", "duplicate"} {
		status, out := n.postWebhook("talkjs", body, signed(t, "talkjs", body, time.Now()))
		if status != 200 || out["status"] != want {
			t.Fatalf("delivery %d: %d %v, want %s", i, status, out, want)
		}
	}
	waitFor(t, "alice notified", func() bool { return len(n.inbox("alice")) > 0 })
	time.Sleep(300 * time.Millisecond)
	if got := n.inbox("alice"); len(got) != 1 {
		t.Fatalf("alice has %d notifications, want 1", len(got))
	}
}

func TestWebhookRetractionReachesTheLiveClient(t *testing.T) {
	n := startNode(t, webhookConfig)
	ws := n.mustDialWS("alice", "")
	sent := []byte(webhookFixtures["talkjs"].body)
	if status, out := n.postWebhook("talkjs", sent, signed(t, "talkjs", sent, time.Now())); status != 200 {
		t.Fatalf("message.sent: %d %v", status, out)
	}
	f := ws.mustNext()
	if f.Type != "notification" || f.Notification.Title != "Bob" {
		t.Fatalf("first frame = %+v", f)
	}
	del := []byte(`{"id":"evt_tj_2","createdAt":1764064900000,"type":"message.deleted","data":{
		"conversation":{"id":"c1","participants":{"alice":{"notify":true},"bob":{"notify":true}}},
		"message":{"id":"m1","senderId":"bob","conversationId":"c1"},"sender":{"id":"bob","name":"Bob"}}}`)
	if status, out := n.postWebhook("talkjs", del, signed(t, "talkjs", del, time.Now())); status != 200 {
		t.Fatalf("message.deleted: %d %v", status, out)
	}
	f = ws.mustNext()
	if f.Type != "retract" || f.ID != f.ID || f.ID == "" {
		t.Fatalf("second frame = %+v, want a retraction", f)
	}
	if first := n.inbox("alice")[0].ID; f.ID != first {
		t.Fatalf("retraction names %q, the notification was %q", f.ID, first)
	}
}

func TestPreferencesMuteAWebhookConversation(t *testing.T) {
	n := startNode(t, webhookConfig)
	alice := mintToken(t, "alice")
	status, body := n.do(http.MethodPut, "/v1/preferences", alice, map[string]any{"muted": []string{"c1"}, "locale": "fr"})
	if status != 200 {
		t.Fatalf("put preferences: %d %s", status, body)
	}
	status, body = n.do(http.MethodGet, "/v1/preferences", alice, nil)
	if status != 200 || !strings.Contains(string(body), `"muted":["c1"]`) {
		t.Fatalf("get preferences: %d %s", status, body)
	}
	if status, _ := n.do(http.MethodPut, "/v1/preferences", alice, map[string]any{"channels": map[string]bool{"pigeon": true}}); status != 400 {
		t.Fatalf("unknown channel: %d, want 400", status)
	}
	b := []byte(strings.Replace(webhookFixtures["talkjs"].body, `"notify":false`, `"notify":true`, 1))
	if status, out := n.postWebhook("talkjs", b, signed(t, "talkjs", b, time.Now())); status != 200 {
		t.Fatalf("webhook: %d %v", status, out)
	}
	waitFor(t, "carol notified", func() bool { return len(n.inbox("carol")) > 0 })
	time.Sleep(200 * time.Millisecond)
	if got := n.inbox("alice"); len(got) != 0 {
		t.Fatalf("alice muted c1 but got %+v", got)
	}
}

// TestEveryProviderRefusesOversizedAndMalformedBodies: the limits hold on
// every provider's endpoint, signed correctly or not.
func TestEveryProviderRefusesOversizedAndMalformedBodies(t *testing.T) {
	n := startNode(t, webhookConfig)
	big := bytes.Repeat([]byte("a"), 2<<20)
	malformed := []byte(`{"id":"x","type":`)
	for provider := range webhookFixtures {
		t.Run(provider, func(t *testing.T) {
			if status, out := n.postWebhook(provider, big, signed(t, provider, big, time.Now())); status != http.StatusRequestEntityTooLarge {
				t.Fatalf("2 MiB body: %d %v, want 413", status, out)
			}
			status, out := n.postWebhook(provider, malformed, signed(t, provider, malformed, time.Now()))
			errObj, _ := out["error"].(map[string]any)
			if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(errObj["message"]), "JSON") {
				t.Fatalf("malformed JSON: %d %v, want 400 naming the problem", status, out)
			}
		})
	}
}

// TestWebhookBadInputIsDroppedAndCounted: a third-party webhook naming a
// recipient id no API call could name, and a javascript: photo URL, still
// notifies the good recipients, without the icon, and says so in metrics.
func TestWebhookBadInputIsDroppedAndCounted(t *testing.T) {
	n := startNode(t, webhookConfig)
	b := []byte(`{"id":"evt_tj_bad","createdAt":1764064800000,"type":"message.sent","data":{
		"conversation":{"id":"c1","participants":{"alice":{"notify":true},"bob":{"notify":true},"eve\nadmin":{"notify":true}}},
		"message":{"id":"m9","text":"Hello!","senderId":"bob","conversationId":"c1","type":"UserMessage","createdAt":1764064800000},
		"sender":{"id":"bob","name":"Bob","photoUrl":"javascript:alert(1)"}}}`)
	if status, out := n.postWebhook("talkjs", b, signed(t, "talkjs", b, time.Now())); status != 200 {
		t.Fatalf("webhook: %d %v", status, out)
	}
	waitFor(t, "alice notified", func() bool { return len(n.inbox("alice")) > 0 })
	status, body := n.do(http.MethodGet, "/v1/notifications", mintToken(t, "alice"), nil)
	if status != 200 || strings.Contains(string(body), "javascript") || !strings.Contains(string(body), `"title":"Bob"`) {
		t.Fatalf("alice's inbox: %d %s", status, body)
	}
	waitFor(t, "drop metrics", func() bool {
		m := n.metrics()
		return strings.Contains(m, `herald_webhook_input_dropped_total{field="recipient",provider="talkjs"} 1`) &&
			strings.Contains(m, `herald_webhook_input_dropped_total{field="icon",provider="talkjs"} 1`)
	})
}

// TestStandardWebhookWithABadURLIsRefused: an app's own webhook is told,
// as the API would tell it.
func TestStandardWebhookWithABadURLIsRefused(t *testing.T) {
	n := startNode(t, webhookConfig)
	b := []byte(`{"type":"notification.send","data":{"to":["alice"],"title":"t","url":"javascript:alert(1)"}}`)
	status, out := n.postWebhook("herald", b, signed(t, "herald", b, time.Now()))
	errObj, _ := out["error"].(map[string]any)
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(errObj["message"]), "data.url") {
		t.Fatalf("webhook: %d %v, want 400 naming data.url", status, out)
	}
}
