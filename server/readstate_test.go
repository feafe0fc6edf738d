package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/redistest"
)

func TestReadState(t *testing.T) { testReadState(t, embedded) }

func (n *testNode) unread(user string) (total int, tags map[string]int) {
	n.t.Helper()
	status, body := n.do(http.MethodGet, "/v1/unread", mintToken(n.t, user), nil)
	var u struct {
		Total int
		Tags  map[string]int
	}
	if status != http.StatusOK || json.Unmarshal(body, &u) != nil {
		n.t.Fatalf("unread: %d %s", status, body)
	}
	return u.Total, u.Tags
}

// testReadState: a read by tag closes the popups in every session of the
// user and sends the new counts; the inbox shows read_at and filters
// unread; bad input changes nothing; the server API reads on the user's
// behalf.
func testReadState(t *testing.T, backend nodeBackend) {
	n := startNodeOn(t, backend, nil)
	tabs := []*wsClient{n.mustDialWS("alice", ""), n.mustDialWS("alice", "")}
	waitFor(t, "sessions", func() bool { return n.srv.Hub().LocalSessions("alice") == 2 })
	var ids []string
	for i, tag := range []string{"c1", "c1", "c2"} {
		status, body := n.send(map[string]any{"to": []string{"alice"}, "title": fmt.Sprint("t", i), "tag": tag})
		var r sendResponse
		if status != http.StatusAccepted || json.Unmarshal(body, &r) != nil {
			t.Fatalf("send: %d %s", status, body)
		}
		ids = append(ids, r.Notifications[0].ID)
	}
	bobID := n.mustSend([]string{"bob"}, "bob's").Notifications[0].ID
	for _, tab := range tabs {
		for range 3 {
			if f := tab.mustNext(); f.Type != "notification" {
				t.Fatalf("got %+v", f)
			}
		}
	}
	if total, tags := n.unread("alice"); total != 3 || tags["c1"] != 2 || tags["c2"] != 1 {
		t.Fatalf("unread %d %v", total, tags)
	}
	alice := mintToken(t, "alice")

	// Bad input: clear 4xx, nothing changed.
	for i, tc := range []struct {
		body any
		want int
	}{
		{map[string]any{"ids": []string{"nope"}}, http.StatusNotFound},
		{map[string]any{"ids": []string{ids[0], bobID}}, http.StatusNotFound},
		{map[string]any{"ids": make([]string, 1001)}, http.StatusBadRequest},
		{map[string]any{"ids": strings.Split(strings.Repeat("x,", 10000), ",")}, http.StatusBadRequest},
		{map[string]any{"up_to": "not a cursor"}, http.StatusBadRequest},
		{map[string]any{"up_to": "otherepoch-1"}, http.StatusNotFound},
		{map[string]any{"tag": "nothing-here"}, http.StatusNotFound},
		{map[string]any{"tag": "c1", "ids": []string{ids[0]}}, http.StatusBadRequest},
		{map[string]any{}, http.StatusBadRequest},
	} {
		if status, body := n.do(http.MethodPost, "/v1/read", alice, tc.body); status != tc.want {
			t.Fatalf("bad input %d: %d %s, want %d", i, status, body, tc.want)
		}
	}
	if total, _ := n.unread("alice"); total != 3 {
		t.Fatalf("bad input changed the counts: %d", total)
	}

	status, body := n.do(http.MethodPost, "/v1/read", alice, map[string]any{"tag": "c1"})
	if status != http.StatusOK || !strings.Contains(string(body), `"changed":2`) || !strings.Contains(string(body), `"total":1`) {
		t.Fatalf("read tag: %d %s", status, body)
	}
	for i, tab := range tabs {
		if f := tab.mustNext(); f.Type != "read" || f.Tag != "c1" || f.State != "read" {
			t.Fatalf("tab %d got %+v, want the read", i, f)
		}
		if f := tab.mustNext(); f.Type != "unread" || f.Total != 1 || f.Tags["c2"] != 1 || f.Tags["c1"] != 0 {
			t.Fatalf("tab %d got %+v, want the counts", i, f)
		}
	}
	// Again: idempotent.
	if status, body := n.do(http.MethodPost, "/v1/read", alice, map[string]any{"tag": "c1"}); status != http.StatusOK || !strings.Contains(string(body), `"changed":0`) {
		t.Fatalf("read again: %d %s", status, body)
	}

	status, body = n.do(http.MethodGet, "/v1/notifications", alice, nil)
	var inbox struct {
		Notifications []map[string]any
	}
	if status != http.StatusOK || json.Unmarshal(body, &inbox) != nil || len(inbox.Notifications) != 3 {
		t.Fatalf("inbox: %d %s", status, body)
	}
	for i, x := range inbox.Notifications {
		_, read := x["read_at"]
		if read != (i < 2) {
			t.Fatalf("inbox %d: %v", i, x)
		}
	}
	_, body = n.do(http.MethodGet, "/v1/notifications?unread=true", alice, nil)
	if json.Unmarshal(body, &inbox) != nil || len(inbox.Notifications) != 1 || inbox.Notifications[0]["id"] != ids[2] {
		t.Fatalf("unread inbox: %s", body)
	}

	// The server API, on the user's behalf: everything up to the newest.
	cursor := inbox.Notifications[0]["cursor"].(string)
	status, body = n.do(http.MethodPost, "/v1/users/alice/read", testAPIKey, map[string]any{"up_to": cursor})
	if status != http.StatusOK || !strings.Contains(string(body), `"total":0`) {
		t.Fatalf("api read: %d %s", status, body)
	}
	if status, _ := n.do(http.MethodPost, "/v1/users/alice/read", mintToken(t, "alice"), map[string]any{"up_to": cursor}); status != http.StatusUnauthorized && status != http.StatusForbidden {
		t.Fatalf("a user token on the server API: %d", status)
	}
	if total, _ := n.unread("alice"); total != 0 {
		t.Fatalf("unread after the api read: %d", total)
	}
	if total, _ := n.unread("bob"); total != 1 {
		t.Fatalf("bob's unread: %d", total)
	}
}

// TestReadOnOneNodeClearsSessionsOnAnother: two nodes on one Redis; a read
// through node A reaches alice's session on node B, and cancels the push
// fallback B scheduled for the notification her session never acked.
func TestReadOnOneNodeClearsSessionsOnAnother(t *testing.T) {
	rs := redistest.Start(t)
	f, push := newPushFakes(t)
	use := func(c *configT) { push(c); c.RedisURL = rs.URL() }
	a, b := startNode(t, use), startNode(t, use)
	b.registerDevices(f, "alice")
	ws := b.mustDialWS("alice", "")
	b.waitOnline("alice")
	id := b.mustSend([]string{"alice"}, "read elsewhere").Notifications[0].ID
	if fr := ws.mustNext(); fr.Type != "notification" {
		t.Fatalf("got %+v", fr)
	}
	if status, body := a.do(http.MethodPost, "/v1/read", mintToken(t, "alice"), map[string]any{"ids": []string{id}}); status != http.StatusOK {
		t.Fatalf("read: %d %s", status, body)
	}
	if fr := ws.mustNext(); fr.Type != "read" || len(fr.IDs) != 1 || fr.IDs[0] != id {
		t.Fatalf("got %+v, want the read", fr)
	}
	if fr := ws.mustNext(); fr.Type != "unread" || fr.Total != 0 {
		t.Fatalf("got %+v, want the counts", fr)
	}
	// The ack timeout (2 s) passes: nothing is pushed.
	time.Sleep(3 * time.Second)
	if c := f.counts(); c != [3]int{} {
		t.Fatalf("pushes after the read: %v", c)
	}
}

// TestMarksAreRateLimitedPerUser: a user's read requests beyond the
// burst get 429 with Retry-After, another user's and the server API's do
// not.
func TestMarksAreRateLimitedPerUser(t *testing.T) {
	n := startNode(t, func(c *configT) { c.MarkRate, c.MarkBurst = 1, 3 })
	id := n.mustSend([]string{"alice"}, "x").Notifications[0].ID
	n.mustSend([]string{"bob"}, "y")
	tok := mintToken(t, "alice")
	for i := 0; i < 3; i++ {
		if status, body := n.do(http.MethodPost, "/v1/seen", tok, map[string]any{"ids": []string{id}}); status != http.StatusOK {
			t.Fatalf("mark %d: %d %s", i, status, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, n.ts.URL+"/v1/read", strings.NewReader(`{"ids":["`+id+`"]}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the burst: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if status, body := n.do(http.MethodPost, "/v1/read", mintToken(t, "bob"), map[string]any{"up_to": latestCursor(t, n, "bob")}); status != http.StatusOK {
		t.Fatalf("bob: %d %s", status, body)
	}
	if status, body := n.do(http.MethodPost, "/v1/users/alice/read", testAPIKey, map[string]any{"ids": []string{id}}); status != http.StatusOK {
		t.Fatalf("server API: %d %s", status, body)
	}
	if total, _ := n.unread("alice"); total != 0 {
		t.Fatalf("alice unread %d after the server API's read", total)
	}
}

// latestCursor is the cursor of user's inbox head.
func latestCursor(t *testing.T, n *testNode, user string) string {
	t.Helper()
	_, body := n.do(http.MethodGet, "/v1/notifications", mintToken(t, user), nil)
	var r struct{ Notifications []struct{ Cursor string } }
	if err := json.Unmarshal(body, &r); err != nil || len(r.Notifications) == 0 {
		t.Fatalf("inbox %s", body)
	}
	return r.Notifications[0].Cursor
}
