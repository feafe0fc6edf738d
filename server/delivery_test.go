package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
)

func TestWSDeliversNotification(t *testing.T) { testWSDeliversNotification(t, embedded) }

func testWSDeliversNotification(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	ws := n.mustDialWS("alice", "")
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	resp := n.mustSend([]string{"alice"}, "hello")
	f := ws.mustNext()
	if f.Type != "notification" || f.Notification.Title != "hello" || f.Notification.User != "alice" {
		t.Fatalf("frame = %+v", f)
	}
	if f.Notification.ID != resp.Notifications[0].ID || f.Notification.Cursor != resp.Notifications[0].Cursor {
		t.Fatalf("frame id/cursor %s/%s, sent %+v", f.Notification.ID, f.Notification.Cursor, resp.Notifications[0])
	}
}

func TestSSEDeliversNotification(t *testing.T) { testSSEDeliversNotification(t, embedded) }

func testSSEDeliversNotification(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	sse := n.mustDialSSE("alice", nil)
	if ct := sse.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	resp := n.mustSend([]string{"alice", "bob"}, "hello")
	ev := sse.mustNext()
	if ev.Event != "notification" || ev.ID != resp.Notifications[0].Cursor {
		t.Fatalf("event = %+v, want cursor %s", ev, resp.Notifications[0].Cursor)
	}
	var got notification.Notification
	if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "hello" || got.Cursor != ev.ID || got.User != "alice" {
		t.Fatalf("notification = %+v", got)
	}
}

// TestResumeDeliversMissedInOrder resumes from a cursor while new
// notifications keep arriving: the client must see every one after the
// cursor exactly once and in order.
func TestResumeDeliversMissedInOrder(t *testing.T) { testResumeDeliversMissedInOrder(t, embedded) }

func testResumeDeliversMissedInOrder(t *testing.T, backend nodeBackend) {
	for _, transport := range []string{"ws", "sse"} {
		t.Run(transport, func(t *testing.T) {
			n := startNodeOn(t, backend, func(c *configT) { c.SessionQueue = 4096 })
			var cursors []string
			for i := 0; i < 40; i++ {
				cursors = append(cursors, n.mustSend([]string{"alice"}, fmt.Sprint(i)).Notifications[0].Cursor)
			}
			const total = 120
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 40; i < total; i++ {
					n.mustSend([]string{"alice"}, fmt.Sprint(i))
				}
			}()
			since := cursors[9]
			var next func() (string, string)
			if transport == "ws" {
				ws := n.mustDialWS("alice", "since="+since)
				next = func() (string, string) {
					f := ws.mustNext()
					if f.Type != "notification" {
						t.Fatalf("unexpected frame %+v", f)
					}
					return f.Notification.Title, f.Notification.Cursor
				}
			} else {
				sse := n.mustDialSSE("alice", http.Header{"Last-Event-ID": {since}})
				next = func() (string, string) {
					ev := sse.mustNext()
					if ev.Event != "notification" {
						t.Fatalf("unexpected event %+v", ev)
					}
					var got notification.Notification
					_ = json.Unmarshal([]byte(ev.Data), &got)
					return got.Title, ev.ID
				}
			}
			for want := 10; want < total; want++ {
				title, cur := next()
				if title != fmt.Sprint(want) {
					t.Fatalf("got %q (cursor %s), want %d", title, cur, want)
				}
			}
			wg.Wait()
		})
	}
}

func TestResumeUnknownCursorResets(t *testing.T) { testResumeUnknownCursorResets(t, embedded) }

func testResumeUnknownCursorResets(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	head := n.mustSend([]string{"alice"}, "one").Notifications[0].Cursor
	for _, since := range []string{"otherepoch-1", strings.Split(head, "-")[0] + "-99"} {
		ws := n.mustDialWS("alice", "since="+since)
		f := ws.mustNext()
		if f.Type != "reset" || f.Cursor != head {
			t.Fatalf("since %s: frame %+v, want reset at %s", since, f, head)
		}
		head = n.mustSend([]string{"alice"}, "after").Notifications[0].Cursor
		if f := ws.mustNext(); f.Type != "notification" || f.Notification.Title != "after" {
			t.Fatalf("after reset: %+v", f)
		}
		_ = ws.c.CloseNow()
	}
	sse := n.mustDialSSE("alice", http.Header{"Last-Event-ID": {"otherepoch-5"}})
	if ev := sse.mustNext(); ev.Event != "reset" {
		t.Fatalf("sse: %+v", ev)
	}
}

func TestResumeFromHeadDeliversNothingOld(t *testing.T) {
	testResumeFromHeadDeliversNothingOld(t, embedded)
}

func testResumeFromHeadDeliversNothingOld(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	head := n.mustSend([]string{"alice"}, "one").Notifications[0].Cursor
	ws := n.mustDialWS("alice", "since="+head)
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	n.mustSend([]string{"alice"}, "two")
	if f := ws.mustNext(); f.Notification.Title != "two" {
		t.Fatalf("got %+v", f)
	}
}

func TestInboxListsOwnNotificationsOldestFirst(t *testing.T) {
	testInboxListsOwnNotificationsOldestFirst(t, embedded)
}

func testInboxListsOwnNotificationsOldestFirst(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	for i := 0; i < 5; i++ {
		n.mustSend([]string{"alice"}, fmt.Sprint("a", i))
		n.mustSend([]string{"bob"}, fmt.Sprint("b", i))
	}
	status, body := n.do(http.MethodGet, "/v1/notifications?limit=3", mintToken(t, "alice"), nil)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	var inbox struct {
		Notifications []notification.Notification
		Cursor        string
	}
	_ = json.Unmarshal(body, &inbox)
	var titles []string
	for _, x := range inbox.Notifications {
		if x.User != "alice" {
			t.Fatalf("alice's inbox holds %s's notification", x.User)
		}
		titles = append(titles, x.Title)
	}
	if strings.Join(titles, ",") != "a2,a3,a4" {
		t.Fatalf("titles %v", titles)
	}
	first := inbox.Notifications[0].Cursor
	status, body = n.do(http.MethodGet, "/v1/notifications?since="+first, mintToken(t, "alice"), nil)
	_ = json.Unmarshal(body, &inbox)
	if status != http.StatusOK || len(inbox.Notifications) != 2 || inbox.Notifications[0].Title != "a3" {
		t.Fatalf("since: %d %s", status, body)
	}
	status, body = n.do(http.MethodGet, "/v1/notifications?since=bad", mintToken(t, "alice"), nil)
	if status != http.StatusBadRequest {
		t.Fatalf("bad cursor: %d %s", status, body)
	}
}

func TestSendIsIdempotent(t *testing.T) { testSendIsIdempotent(t, embedded) }

func testSendIsIdempotent(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	ws := n.mustDialWS("alice", "")
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	req := map[string]any{"id": "evt-1", "to": []string{"alice"}, "title": "once"}
	s1, b1 := n.send(req)
	s2, b2 := n.send(req)
	if s1 != http.StatusAccepted || s2 != http.StatusAccepted || string(b1) != string(b2) {
		t.Fatalf("first %d %s, second %d %s", s1, b1, s2, b2)
	}
	n.mustSend([]string{"alice"}, "marker")
	if f := ws.mustNext(); f.Notification.Title != "once" {
		t.Fatalf("got %+v", f)
	}
	if f := ws.mustNext(); f.Notification.Title != "marker" {
		t.Fatalf("duplicate delivered: %+v", f)
	}
}

func TestSendValidation(t *testing.T) {
	n := startNode(t, nil)
	cases := []struct {
		name string
		body any
		want int
	}{
		{"no recipients", map[string]any{"to": []string{}, "title": "x"}, 400},
		{"empty user", map[string]any{"to": []string{""}, "title": "x"}, 400},
		{"no content", map[string]any{"to": []string{"a"}}, 400},
		{"bad urgency", map[string]any{"to": []string{"a"}, "title": "x", "urgency": "now"}, 400},
		{"data not object", map[string]any{"to": []string{"a"}, "title": "x", "data": []int{1}}, 400},
		{"malformed json", []byte(`{"to":`), 400},
		{"too large", []byte(`{"to":["a"],"title":"` + strings.Repeat("x", 2<<20) + `"}`), 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.send(tc.body)
			if status != tc.want || !strings.Contains(string(body), `"error"`) {
				t.Fatalf("%d %s, want %d", status, body, tc.want)
			}
		})
	}
}

func TestPresenceCountsLocalSessions(t *testing.T) { testPresenceCountsLocalSessions(t, embedded) }

func testPresenceCountsLocalSessions(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	get := func() (online bool, sessions int) {
		status, body := n.do(http.MethodGet, "/v1/users/alice/presence", testAPIKey, nil)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		var p struct {
			Online   bool
			Sessions int
		}
		_ = json.Unmarshal(body, &p)
		return p.Online, p.Sessions
	}
	if on, _ := get(); on {
		t.Fatal("online before connecting")
	}
	ws := n.mustDialWS("alice", "")
	n.mustDialSSE("alice", nil)
	waitFor(t, "two sessions", func() bool { _, s := get(); return s == 2 })
	_ = ws.c.CloseNow()
	waitFor(t, "one session", func() bool { on, s := get(); return on && s == 1 })
}

func TestShutdownClosesWebSocketsWithServiceRestart(t *testing.T) {
	testShutdownClosesWebSocketsWithServiceRestart(t, embedded)
}

func testShutdownClosesWebSocketsWithServiceRestart(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	ws := n.mustDialWS("alice", "")
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	go n.stop()
	_, err := ws.next(10 * time.Second)
	if code := closeStatus(err); code != 1012 {
		t.Fatalf("close status %d (%v), want 1012", code, err)
	}
}
