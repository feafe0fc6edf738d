package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSessionCapClosesTheOldestWebSocketWith4008: over the cap, the
// user's oldest socket is closed with 4008 and the newer ones keep
// receiving.
func TestSessionCapClosesTheOldestWebSocketWith4008(t *testing.T) {
	n := startNode(t, func(c *configT) { c.MaxSessionsPerUser = 2 })
	oldest := n.mustDialWS("alice", "")
	n.waitOnline("alice")
	second := n.mustDialWS("alice", "")
	waitFor(t, "two sessions", func() bool { return n.srv.Hub().LocalSessions("alice") == 2 })
	third := n.mustDialWS("alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := oldest.c.Read(ctx)
	if got := closeStatus(err); got != 4008 {
		t.Fatalf("oldest socket ended with %v (status %d), want close code 4008", err, got)
	}
	waitFor(t, "the cap held", func() bool { return n.srv.Hub().LocalSessions("alice") == 2 })
	n.mustSend([]string{"alice"}, "still here")
	for _, c := range []*wsClient{second, third} {
		if f := c.mustNext(); f.Notification.Title != "still here" {
			t.Fatalf("frame %+v", f)
		}
	}
}

// TestSessionCapEndsTheOldestSSEStream: an SSE stream cannot carry a
// close code; the oldest one simply ends.
func TestSessionCapEndsTheOldestSSEStream(t *testing.T) {
	n := startNode(t, func(c *configT) { c.MaxSessionsPerUser = 1 })
	oldest := n.mustDialSSE("alice", nil)
	waitFor(t, "one session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	newest := n.mustDialSSE("alice", nil)
	if _, err := oldest.next(10 * time.Second); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("oldest stream: %v, want it ended", err)
	}
	waitFor(t, "the cap held", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	n.mustSend([]string{"alice"}, "newest only")
	if ev := newest.mustNext(); ev.Event != "notification" {
		t.Fatalf("event %+v", ev)
	}
}

func TestDeviceCapAnswers409AndReRegisteringStillWorks(t *testing.T) {
	n := startNode(t, func(c *configT) { c.MaxDevicesPerUser = 2 })
	tok := mintToken(t, "alice")
	fcm := func(token string) map[string]any { return map[string]any{"platform": "fcm", "token": token} }
	for _, tk := range []string{"tok-1", "tok-2"} {
		if status, body := n.do(http.MethodPost, "/v1/devices", tok, fcm(tk)); status != http.StatusCreated {
			t.Fatalf("register %s: %d %s", tk, status, body)
		}
	}
	status, body := n.do(http.MethodPost, "/v1/devices", tok, fcm("tok-3"))
	if status != http.StatusConflict || !strings.Contains(string(body), `"too_many_devices"`) {
		t.Fatalf("third device: %d %s, want 409 too_many_devices", status, body)
	}
	if status, body := n.do(http.MethodPost, "/v1/devices", tok, fcm("tok-1")); status != http.StatusOK {
		t.Fatalf("re-registering a device: %d %s, want 200", status, body)
	}
	if status, body := n.do(http.MethodPost, "/v1/devices", mintToken(t, "bob"), fcm("tok-9")); status != http.StatusCreated {
		t.Fatalf("another user: %d %s", status, body)
	}
}
