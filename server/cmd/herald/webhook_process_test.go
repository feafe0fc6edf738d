package main

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/webhook/talkjs"
)

const procTalkJSSecret = "sk_test_process_talkjs"

// postTalkJS sends a signed TalkJS message.sent webhook: event id evt,
// message text evt, in a conversation of its own (so no throttle collapses
// it), from "sender" to user. It returns the status, or an error when the
// request got no answer.
func postTalkJS(base, evt, user string) (int, error) {
	now := time.Now()
	body := fmt.Appendf(nil, `{"id":%q,"createdAt":%d,"type":"message.sent","data":{"conversation":{"id":"c-%s","participants":{"sender":{"notify":true},%q:{"notify":true}}},"message":{"id":"m-%s","text":%q,"senderId":"sender","conversationId":"c-%s","type":"UserMessage"},"sender":{"id":"sender","name":"Sender"}}}`,
		evt, now.UnixMilli(), evt, user, evt, evt, evt)
	sig, ts := talkjs.Sign(procTalkJSSecret, now, body)
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/talkjs", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-TalkJS-Signature", sig)
	req.Header.Set("X-TalkJS-Timestamp", ts)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestWebhooksSurviveAKillUnderLoad: the node is killed while webhooks
// pour in. After the restart, the sender retries what got no 200 (as
// TalkJS does) and repeats some that did; every event becomes exactly one
// notification (one id) for its recipient, none is lost.
func TestWebhooksSurviveAKillUnderLoad(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HERALD_DATA_DIR=" + dir, "HERALD_JWT_SECRET=" + procSecret, "HERALD_API_KEY=" + procAPIKey,
		"HERALD_TALKJS_SECRET=" + procTalkJSSecret}
	n := startProcess(t, env...)
	users := []string{"u0", "u1", "u2"}
	recipient := func(evt string) string { return users[len(evt)%len(users)] }
	var mu sync.Mutex
	sent := map[string]bool{} // event → answered 200
	loadUntilKilled(t, n, 300, func(w, i int) bool {
		evt := fmt.Sprintf("evt-w%d-%d", w, i)
		status, err := postTalkJS(n.base, evt, recipient(evt))
		ok := err == nil && status == http.StatusOK
		mu.Lock()
		sent[evt] = ok
		mu.Unlock()
		return ok
	})

	n = startProcess(t, env...)
	retried, accepted := 0, 0
	for evt, ok := range sent {
		if ok {
			accepted++
		}
		if ok && len(evt)%4 != 0 {
			continue // accepted; those with a length divisible by 4 are sent again
		}
		status, err := postTalkJS(n.base, evt, recipient(evt))
		if err != nil || status != http.StatusOK {
			t.Fatalf("retry of %s: %d %v", evt, status, err)
		}
		if !ok {
			retried++
		}
	}

	ids := map[string]map[string]bool{} // event → notification ids seen
	waitUntil(t, "every event processed", func() bool {
		clear(ids)
		for _, user := range users {
			for _, e := range inbox(t, n.base, user) {
				if ids[e.Body] == nil {
					ids[e.Body] = map[string]bool{}
				}
				ids[e.Body][e.ID] = true
			}
		}
		return len(ids) >= len(sent)
	})
	for evt := range sent {
		if len(ids[evt]) != 1 {
			t.Errorf("event %s became %d notifications, want 1", evt, len(ids[evt]))
		}
	}
	if len(ids) != len(sent) {
		t.Errorf("%d distinct notifications for %d events", len(ids), len(sent))
	}
	t.Logf("%d webhooks, %d accepted before the kill, %d retried after it", len(sent), accepted, retried)
}
