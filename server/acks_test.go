package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// postAck posts ids to /v1/ack as user and returns the status and the
// Retry-After header.
func (n *testNode) postAck(user string, ids []string) (int, string) {
	n.t.Helper()
	b, _ := json.Marshal(map[string][]string{"ids": ids})
	req, _ := http.NewRequest(http.MethodPost, n.ts.URL+"/v1/ack", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+mintToken(n.t, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Errorf("ack: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// metric returns the value of the first /metrics line starting with
// prefix, or "" when there is none.
func (n *testNode) metric(prefix string) string {
	n.t.Helper()
	_, body := n.do(http.MethodGet, "/metrics", "", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(line, prefix))
		}
	}
	return ""
}

// TestAckFloodOfOneUserDoesNotPushAnothersAckedNotification is the
// reported attack end to end: mallory posts acks of a thousand made-up ids
// in a loop while bob acks a real notification over his WebSocket; bob
// must get no push, and mallory is told to slow down.
func TestAckFloodOfOneUserDoesNotPushAnothersAckedNotification(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	n.registerDevices(f, "bob")
	ws := n.mustDialWS("bob", "")
	n.waitOnline("bob")

	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint("fake-", i)
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	retryAfter := ""
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, ra := n.postAck("mallory", ids)
				mu.Lock()
				statuses[status]++
				if status == http.StatusTooManyRequests && retryAfter == "" {
					retryAfter = ra
				}
				mu.Unlock()
			}
		}()
	}

	n.mustSend([]string{"bob"}, "Real one")
	fr := ws.mustNext()
	ack, _ := json.Marshal(map[string]string{"type": "ack", "id": fr.Notification.ID})
	if err := ws.c.Write(context.Background(), websocket.MessageText, ack); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2*n.cfg.AckTimeout + time.Second)
	close(stop)
	wg.Wait()
	if c := f.counts(); c != [3]int{} {
		t.Fatalf("bob acked, yet got pushes %v", c)
	}
	if statuses[http.StatusTooManyRequests] == 0 || retryAfter == "" {
		t.Fatalf("mallory's flood was never limited: statuses %v, Retry-After %q", statuses, retryAfter)
	}
}

func TestAckRateLimitAnswers429WithRetryAfter(t *testing.T) {
	n := startNode(t, func(c *configT) { c.AckRate, c.AckBurst = 1, 5 })
	if status, _ := n.postAck("alice", []string{"a", "b", "c", "d", "e"}); status != http.StatusOK {
		t.Fatalf("acks within the burst: %d", status)
	}
	status, ra := n.postAck("alice", []string{"f"})
	if status != http.StatusTooManyRequests || ra != "1" {
		t.Fatalf("ack past the burst: %d Retry-After %q, want 429 and 1", status, ra)
	}
	if status, _ := n.postAck("bob", []string{"a", "b", "c", "d", "e"}); status != http.StatusOK {
		t.Fatalf("another user's acks: %d, want 200", status)
	}
	if got := n.metric(`herald_rate_limited_total{transport="http",what="ack"} `); got != "1" {
		t.Fatalf("rate-limited http acks counted %q, want 1", got)
	}

	// A socket cannot get a 429: frames over the limit are dropped and counted.
	ws := n.mustDialWS("carol", "")
	for i := range 8 {
		frame := fmt.Sprintf(`{"type":"ack","id":"n%d"}`, i)
		if err := ws.c.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "dropped ws acks counted", func() bool {
		return n.metric(`herald_rate_limited_total{transport="ws",what="ack"} `) == "3"
	})
	if got := n.metric("herald_acks_total "); got != "15" {
		t.Fatalf("acks applied = %s, want the 15 within the three users' bursts", got)
	}
}
