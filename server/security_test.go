package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/pkg/token"
)

func TestUserEndpointsRejectBadTokens(t *testing.T) {
	n := startNode(t, nil)
	expired, _ := token.Mint([]byte(testSecret), token.Claims{Subject: "alice", SessionID: "s", ExpiresAt: time.Now().Add(-time.Hour)})
	wrongKey, _ := token.Mint([]byte("another-secret-entirely-000000"), token.Claims{Subject: "alice", SessionID: "s", ExpiresAt: time.Now().Add(time.Hour)})
	cases := map[string]string{"missing": "", "expired": expired, "wrong signature": wrongKey, "garbage": "not.a.jwt"}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/v1/notifications", "/v1/sse"} {
				if status, body := n.do(http.MethodGet, path, tok, nil); status != http.StatusUnauthorized {
					t.Fatalf("%s: %d %s", path, status, body)
				}
			}
			if status, _ := n.do(http.MethodPost, "/v1/ack", tok, map[string]any{"ids": []string{"x"}}); status != http.StatusUnauthorized {
				t.Fatalf("ack: %d", status)
			}
			_, resp, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(n.ts.URL, "http")+"/v1/ws?token="+tok, nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("ws: err %v resp %v", err, resp)
			}
		})
	}
}

func TestServerAPIRejectsUserTokens(t *testing.T) {
	n := startNode(t, nil)
	body := map[string]any{"to": []string{"bob"}, "title": "x"}
	if status, _ := n.do(http.MethodPost, "/v1/notifications", mintToken(t, "alice"), body); status != http.StatusForbidden {
		t.Fatalf("user token on server API: %d", status)
	}
	if status, _ := n.do(http.MethodPost, "/v1/notifications", "", body); status != http.StatusUnauthorized {
		t.Fatalf("no key: %d", status)
	}
	if status, _ := n.do(http.MethodGet, "/v1/users/bob/presence", "wrong-key", nil); status != http.StatusUnauthorized {
		t.Fatalf("wrong key on presence: %d", status)
	}
	// And the API key is not a user token.
	if status, _ := n.do(http.MethodGet, "/v1/notifications", testAPIKey, nil); status != http.StatusForbidden {
		t.Fatalf("api key as user token: %d", status)
	}
}

func TestUsersOnlyReceiveTheirOwnStream(t *testing.T) {
	testUsersOnlyReceiveTheirOwnStream(t, embedded)
}

func testUsersOnlyReceiveTheirOwnStream(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	alice := n.mustDialWS("alice", "")
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	n.mustSend([]string{"bob"}, "for bob")
	n.mustSend([]string{"alice"}, "for alice")
	if f := alice.mustNext(); f.Notification.Title != "for alice" {
		t.Fatalf("alice got %+v", f)
	}
	// A cursor of bob's stream does not open bob's history to alice.
	bobCursor := n.mustSend([]string{"bob"}, "secret").Notifications[0].Cursor
	status, body := n.do(http.MethodGet, "/v1/notifications?since=", mintToken(t, "alice"), nil)
	if status != http.StatusOK || strings.Contains(string(body), "bob") {
		t.Fatalf("alice inbox: %d %s", status, body)
	}
	_ = bobCursor
}

func TestForeignOriginIsRejected(t *testing.T) {
	n := startNode(t, func(c *configT) { c.AllowedOrigins = []string{"https://app.example.com"} })
	foreign := http.Header{"Origin": {"https://evil.example.net"}}
	if _, resp, err := n.dialWS("alice", "", foreign); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ws foreign origin: err %v resp %v", err, resp)
	}
	c, err := n.dialSSE("alice", foreign)
	if err != nil || c.resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sse foreign origin: %v %v", err, c.resp.StatusCode)
	}
	allowed := http.Header{"Origin": {"https://app.example.com"}}
	if _, _, err := n.dialWS("alice", "", allowed); err != nil {
		t.Fatalf("ws allowed origin: %v", err)
	}
	c = n.mustDialSSE("alice", allowed)
	if got := c.resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
		t.Fatalf("CORS header %q", got)
	}
}

func TestOversizedClientFrameClosesWith1009(t *testing.T) {
	n := startNode(t, nil)
	ws := n.mustDialWS("alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = ws.c.Write(ctx, websocket.MessageText, []byte(`{"type":"ack","id":"`+strings.Repeat("x", 64<<10)+`"}`))
	_, err := ws.next(10 * time.Second)
	if code := closeStatus(err); code != 1009 {
		t.Fatalf("close status %d (%v), want 1009", code, err)
	}
}

func TestMalformedAcksAreCountedAndIgnored(t *testing.T) {
	n := startNode(t, nil)
	ws := n.mustDialWS("alice", "")
	ctx := context.Background()
	for _, bad := range []string{`not json`, `{"type":"nope"}`, `{"type":"ack"}`, `[1,2]`} {
		if err := ws.c.Write(ctx, websocket.MessageText, []byte(bad)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.c.Write(ctx, websocket.MessageText, []byte(`{"type":"ack","id":"n1"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "metrics", func() bool {
		m := n.metrics()
		return strings.Contains(m, "herald_malformed_client_frames_total 4") && strings.Contains(m, "herald_acks_total 1")
	})
	// The connection is still usable.
	n.mustSend([]string{"alice"}, "still here")
	if f := ws.mustNext(); f.Notification.Title != "still here" {
		t.Fatalf("got %+v", f)
	}
	if status, body := n.do(http.MethodPost, "/v1/ack", mintToken(t, "alice"), map[string]any{"ids": []string{"a", "b"}}); status != http.StatusOK {
		t.Fatalf("ack: %d %s", status, body)
	}
	waitFor(t, "ack count", func() bool { return strings.Contains(n.metrics(), "herald_acks_total 3") })
}

// TestSlowConsumerIsCutOffWithoutSlowingOthers: a client that never reads
// fills its socket and queue and is disconnected, while another user keeps
// receiving.
func TestSlowConsumerIsCutOffWithoutSlowingOthers(t *testing.T) {
	testSlowConsumerIsCutOffWithoutSlowingOthers(t, embedded)
}

func testSlowConsumerIsCutOffWithoutSlowingOthers(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, func(c *configT) { c.SessionQueue = 16; c.WriteTimeout = 2 * time.Second })
	slow := n.mustDialWS("slow", "") // never read
	_ = slow
	fast := n.mustDialWS("fast", "")
	waitFor(t, "sessions", func() bool {
		return n.srv.Hub().LocalSessions("slow") == 1 && n.srv.Hub().LocalSessions("fast") == 1
	})
	big := strings.Repeat("x", 8000)
	for i := 0; i < 4000 && n.srv.Hub().LocalSessions("slow") > 0; i++ {
		status, body := n.send(map[string]any{"to": []string{"slow"}, "title": "t", "body": big})
		if status != http.StatusAccepted {
			t.Fatalf("send: %d %s", status, body)
		}
		if i%50 == 0 {
			n.mustSend([]string{"fast"}, "ping")
			if f := fast.mustNext(); f.Notification.Title != "ping" {
				t.Fatalf("fast got %+v", f)
			}
		}
	}
	waitFor(t, "slow consumer cut off", func() bool { return n.srv.Hub().LocalSessions("slow") == 0 })
	n.mustSend([]string{"fast"}, "after")
	if f := fast.mustNext(); f.Notification.Title != "after" {
		t.Fatalf("fast got %+v", f)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	n := startNode(t, nil)
	ws := n.mustDialWS("alice", "")
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	n.mustSend([]string{"alice"}, "m")
	ws.mustNext()
	waitFor(t, "metrics", func() bool {
		m := n.metrics()
		return strings.Contains(m, `herald_connections{transport="ws"} 1`) &&
			strings.Contains(m, "herald_notifications_published_total 1") &&
			strings.Contains(m, `herald_frames_delivered_total{transport="ws"} 1`) &&
			strings.Contains(m, "herald_delivery_latency_seconds_count 1") &&
			strings.Contains(m, `herald_resumes_total{outcome="none"} 1`)
	})
	for _, p := range []string{"/healthz", "/readyz"} {
		if status, body := n.do(http.MethodGet, p, "", nil); status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, status, body)
		}
	}
}

func (n *testNode) metrics() string {
	resp, err := http.Get(n.ts.URL + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRedactedQueryHidesTokens(t *testing.T) {
	for _, q := range []string{
		"token=abc.def.ghi&since=e-1",
		"Token=abc.def.ghi&since=e-1",
		"TOKEN=abc.def.ghi&since=e-1",
		"access_token=abc&since=e-1",
		"Access_Token=abc&since=e-1",
		"apiKey=abc&since=e-1",
		"since=e-1&token=x&token=abc",
	} {
		req, _ := http.NewRequest(http.MethodGet, "/v1/sse?"+q, nil)
		got := redactedQuery(req.URL)
		if strings.Contains(got, "abc") || !strings.Contains(got, "REDACTED") || !strings.Contains(got, "since=e-1") {
			t.Errorf("?%s logged as %q", q, got)
		}
	}
}

// TestFrameRightBehindUpgradeIsRead: a client may send its first frame in
// the same packet as the upgrade request; those bytes reach net/http's
// buffer before the hijack and must not be lost.
func TestFrameRightBehindUpgradeIsRead(t *testing.T) {
	n := startNode(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := []byte(`{"type":"ack","id":"n1"}`)
	mask := [4]byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(payload))}, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET /v1/ws?token=" + mintToken(t, "alice") + " HTTP/1.1\r\nHost: " + n.ts.Listener.Addr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	waitFor(t, "ack", func() bool {
		m := n.metrics()
		return strings.Contains(m, "herald_acks_total 1") && strings.Contains(m, "herald_malformed_client_frames_total 0")
	})
}

// TestJSONErrorsNameFieldsNotGoTypes: a client learns which field of its
// request is wrong, in JSON terms, and nothing of the server's code.
func TestJSONErrorsNameFieldsNotGoTypes(t *testing.T) {
	n := startNode(t, nil)
	alice := mintToken(t, "alice")
	for _, tc := range []struct {
		path, bearer string
		body         string
		want         string
	}{
		{"/v1/devices", alice, `{"platform":5}`, "platform: expected a string, got number"},
		{"/v1/devices", alice, `{"platform":"webpush","subscription":{"endpoint":"https://push.example/x","keys":{"p256dh":[]}}}`, "subscription.keys.p256dh: expected a string, got array"},
		{"/v1/notifications", testAPIKey, `{"to":"alice","title":"x"}`, "to: expected an array, got string"},
		{"/v1/notifications", testAPIKey, `[1,2]`, "request body must be an object, got array"},
		{"/v1/notifications", testAPIKey, `{"to":["alice"],`, "not valid JSON"},
		{"/v1/ack", alice, `{"ids":"x"}`, "ids: expected an array, got string"},
	} {
		status, body := n.do(http.MethodPost, tc.path, tc.bearer, []byte(tc.body))
		msg := string(body)
		if status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Errorf("POST %s %s: %d %s, want 400 saying %q", tc.path, tc.body, status, msg, tc.want)
		}
		for _, leak := range []string{"Go ", "struct", "deviceRequest", "sendRequest", "json:"} {
			if strings.Contains(msg, leak) {
				t.Errorf("POST %s %s: the error names server internals (%q): %s", tc.path, tc.body, leak, msg)
			}
		}
	}
}
