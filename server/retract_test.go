package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDeleteNotificationRetractsItOnTheLiveSession(t *testing.T) {
	testDeleteNotificationRetractsItOnTheLiveSession(t, embedded)
}

func testDeleteNotificationRetractsItOnTheLiveSession(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	ws := n.mustDialWS("alice", "")
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	status, body := n.send(map[string]any{"to": []string{"alice", "bob"}, "title": "t", "tag": "c1"})
	if status != http.StatusAccepted {
		t.Fatalf("send: %d %s", status, body)
	}
	var sent sendResponse
	_ = json.Unmarshal(body, &sent)
	aliceID, bobID := sent.Notifications[0].ID, sent.Notifications[1].ID
	if f := ws.mustNext(); f.Notification.ID != aliceID {
		t.Fatalf("first frame %+v", f)
	}

	for _, tc := range []struct {
		path   string
		bearer string
		status int
		field  string
	}{
		{"/v1/notifications/" + aliceID, testAPIKey, 400, "user"},
		{"/v1/notifications/" + aliceID + "?user=a%0Ab", testAPIKey, 400, "user"},
		{"/v1/notifications/" + aliceID + "?user=bob", testAPIKey, 404, ""}, // not bob's
		{"/v1/notifications/01UNKNOWN?user=alice", testAPIKey, 404, ""},
		{"/v1/notifications/" + aliceID + "?user=alice", mintToken(t, "alice"), 403, ""},
		{"/v1/notifications/" + aliceID + "?user=alice", "", 401, ""},
	} {
		status, body := n.do(http.MethodDelete, tc.path, tc.bearer, nil)
		if status != tc.status {
			t.Fatalf("DELETE %s: %d %s, want %d", tc.path, status, body, tc.status)
		}
		if _, msg := apiError(t, body); tc.field != "" && !strings.HasPrefix(msg, tc.field+":") {
			t.Fatalf("DELETE %s: %s, want the error to name %s", tc.path, body, tc.field)
		}
	}

	status, body = n.do(http.MethodDelete, "/v1/notifications/"+aliceID+"?user=alice", testAPIKey, nil)
	if status != http.StatusAccepted || !strings.Contains(string(body), aliceID) {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	f := ws.mustNext()
	if f.Type != "retract" || f.ID != aliceID || f.Cursor == "" {
		t.Fatalf("frame after DELETE = %+v, want the retraction of %s", f, aliceID)
	}
	// Bob's copy is his: still there, not retracted.
	if got := n.inbox("bob"); len(got) != 1 || got[0].ID != bobID {
		t.Fatalf("bob's inbox %+v", got)
	}
	// A client resuming from before the retraction gets it from history.
	ws2 := n.mustDialWS("alice", "since="+sent.Notifications[0].Cursor)
	if f := ws2.mustNext(); f.Type != "retract" || f.ID != aliceID {
		t.Fatalf("resumed frame %+v, want the retraction", f)
	}
}

func TestRetractByTagReachesSSESessions(t *testing.T) {
	testRetractByTagReachesSSESessions(t, embedded)
}

func testRetractByTagReachesSSESessions(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	sse := n.mustDialSSE("alice", nil)
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	if status, body := n.send(map[string]any{"to": []string{"alice"}, "title": "t", "tag": "order-7"}); status != http.StatusAccepted {
		t.Fatalf("send: %d %s", status, body)
	}
	if ev := sse.mustNext(); ev.Event != "notification" {
		t.Fatalf("first event %+v", ev)
	}
	status, body := n.do(http.MethodPost, "/v1/retract", testAPIKey, map[string]any{"tag": "order-7", "users": []string{"alice", "alice", "bob"}})
	if status != http.StatusAccepted {
		t.Fatalf("retract: %d %s", status, body)
	}
	var resp retractResponse
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Retractions) != 2 {
		t.Fatalf("retract answer %s: want one retraction per distinct user", body)
	}
	ev := sse.mustNext()
	var r struct{ ID, Tag, Cursor string }
	if err := json.Unmarshal([]byte(ev.Data), &r); err != nil || ev.Event != "retract" || r.Tag != "order-7" || r.ID != resp.Retractions[0].ID || ev.ID != r.Cursor {
		t.Fatalf("event after retract = %+v", ev)
	}
}

func TestRetractValidation(t *testing.T) {
	n := startNode(t, nil)
	many := make([]string, maxRetractUsers+1)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"users": []string{"alice"}}, "tag"},
		{map[string]any{"tag": strings.Repeat("t", 257), "users": []string{"alice"}}, "tag"},
		{map[string]any{"tag": "c1"}, "users"},
		{map[string]any{"tag": "c1", "users": []string{}}, "users"},
		{map[string]any{"tag": "c1", "users": []string{"alice", "bad\x00id"}}, "users"},
		{map[string]any{"tag": "c1", "users": many}, "users"},
	} {
		status, body := n.do(http.MethodPost, "/v1/retract", testAPIKey, tc.body)
		if _, msg := apiError(t, body); status != http.StatusBadRequest || !strings.HasPrefix(msg, tc.field+":") {
			t.Errorf("retract %v: %d %s, want 400 naming %s", tc.body, status, body, tc.field)
		}
	}
	if status, _ := n.do(http.MethodPost, "/v1/retract", testAPIKey, []byte(`{"tag":`)); status != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d", status)
	}
	if status, _ := n.do(http.MethodPost, "/v1/retract", mintToken(t, "alice"), map[string]any{"tag": "c1", "users": []string{"alice"}}); status != http.StatusForbidden {
		t.Errorf("user token: %d, want 403", status)
	}
}

// TestRetractionCancelsPendingPushesAndClosesOnDevices: alice's tab got
// two notifications and acked neither, so both pushes wait for the ack
// timeout. One is deleted by id, the other retracted by tag: her devices
// get one closing push for each, at once, and never the notifications.
func TestRetractionCancelsPendingPushesAndClosesOnDevices(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	n.registerDevices(f, "alice")
	ws := n.mustDialWS("alice", "")
	n.waitOnline("alice")
	first := n.mustSendTagged("alice", "First", "a")
	n.mustSendTagged("alice", "Second", "b")
	ws.mustNext()
	ws.mustNext()
	if status, body := n.do(http.MethodDelete, "/v1/notifications/"+first+"?user=alice", testAPIKey, nil); status != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if status, body := n.do(http.MethodPost, "/v1/retract", testAPIKey, map[string]any{"tag": "b", "users": []string{"alice"}}); status != http.StatusAccepted {
		t.Fatalf("retract: %d %s", status, body)
	}
	if fr := ws.mustNext(); fr.Type != "retract" || fr.ID != first {
		t.Fatalf("live frame %+v", fr)
	}
	if fr := ws.mustNext(); fr.Type != "retract" {
		t.Fatalf("live frame %+v", fr)
	}
	pushes := f.web.WaitPushes(t, 2, 15*time.Second)
	f.fcm.WaitSends(t, 2, 15*time.Second)
	f.apns.WaitPushes(t, 2, 15*time.Second)
	// Past the ack timeout: the notifications' pushes would have gone by now.
	time.Sleep(n.cfg.AckTimeout + 1500*time.Millisecond)
	if c := f.counts(); c != [3]int{2, 2, 2} {
		t.Fatalf("pushes per platform = %v, want the two retractions each and nothing else", c)
	}
	tags := map[string]bool{}
	for _, p := range f.web.Pushes() {
		var fr struct{ Type, ID, Tag string }
		if err := p.JSON(&fr); err != nil || fr.Type != "retract" {
			t.Fatalf("web push %s, want a retraction", p.Payload)
		}
		tags[fr.ID+"/"+fr.Tag] = true
	}
	if !tags[first+"/"] || len(pushes) != 2 {
		t.Fatalf("web pushes %v, want the retraction of %s by id and one of tag b", tags, first)
	}
	f.check(t)
}

func (n *testNode) mustSendTagged(user, title, tag string) string {
	n.t.Helper()
	status, body := n.send(map[string]any{"to": []string{user}, "title": title, "tag": tag})
	if status != http.StatusAccepted {
		n.t.Fatalf("send: %d %s", status, body)
	}
	var resp sendResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		n.t.Fatal(err)
	}
	return resp.Notifications[0].ID
}

// TestRetractRedisMode runs the live retraction tests on the Redis
// back-ends, each on its own redis-server.
func TestRetractRedisMode(t *testing.T) {
	t.Run("DeleteByID", func(t *testing.T) { testDeleteNotificationRetractsItOnTheLiveSession(t, redisBackends) })
	t.Run("ByTag", func(t *testing.T) { testRetractByTagReachesSSESessions(t, redisBackends) })
}
