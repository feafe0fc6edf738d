package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/idempotency"
	"github.com/heraldhq/herald/pkg/ingest"
)

// apiError decodes {"error":{"code","message"}}.
func apiError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code, e.Error.Message
}

func TestSendRefusesClickURLsOtherThanWebAndRelative(t *testing.T) {
	n := startNode(t, nil)
	for _, field := range []string{"url", "icon"} {
		for _, bad := range []string{"javascript:alert(1)", "JAVASCRIPT:alert(1)", "java\tscript:alert(1)",
			" javascript:alert(1)", "data:text/html,x", "//evil.example", "/\\evil.example"} {
			status, body := n.send(map[string]any{"to": []string{"alice"}, "title": "t", field: bad})
			if status != http.StatusBadRequest {
				t.Errorf("%s %q: %d %s, want 400", field, bad, status, body)
				continue
			}
			if code, msg := apiError(t, body); code != "invalid_field" || !strings.HasPrefix(msg, field+":") {
				t.Errorf("%s %q: error %s %q, want invalid_field naming %s", field, bad, code, msg, field)
			}
		}
	}
	for _, good := range []string{"https://example.com/chat/c1", "http://example.com", "/chat/c1", "chat/c1", "?x=1"} {
		if status, body := n.send(map[string]any{"to": []string{"alice"}, "title": "t", "url": good, "icon": good}); status != http.StatusAccepted {
			t.Errorf("url %q: %d %s, want 202", good, status, body)
		}
	}
}

// post sends a raw body to the server API and returns status, headers and body.
func (n *testNode) post(path, body string) (int, http.Header, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.ts.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestIdempotencyKeyReplaysTheSameRequestAndRefusesAnother, on the
// embedded store and on Redis: the same request (spaced and ordered
// differently) replays the first answer; a different one under the same
// key is a 422; a key in use is a 409.
func TestIdempotencyKeyReplaysTheSameRequestAndRefusesAnother(t *testing.T) {
	for _, b := range []nodeBackend{embedded, redisBackends} {
		t.Run(b.String(), func(t *testing.T) {
			n := startNodeOn(t, b, nil)
			first := `{"id":"k1","to":["alice","bob"],"title":"t","urgency":"normal","data":{"a":1,"b":{"c":[1,2]}}}`
			status, h, b1 := n.post("/v1/notifications", first)
			if status != http.StatusAccepted || h.Get("Idempotent-Replayed") != "" {
				t.Fatalf("first: %d %v %s", status, h, b1)
			}
			same := "{ \"data\": {\"b\": {\"c\": [1, 2]}, \"a\": 1},\n  \"title\":\"t\", \"to\": [\"alice\", \"bob\"], \"id\": \"k1\", \"extra\": true }"
			status, h, b2 := n.post("/v1/notifications", same)
			if status != http.StatusAccepted || h.Get("Idempotent-Replayed") != "true" || string(b2) != string(b1) {
				t.Fatalf("same request again: %d %v %s, want the replay of %s", status, h, b2, b1)
			}
			for _, other := range []string{
				`{"id":"k1","to":["alice","bob"],"title":"u","data":{"a":1,"b":{"c":[1,2]}}}`,
				`{"id":"k1","to":["alice"],"title":"t","data":{"a":1,"b":{"c":[1,2]}}}`,
				`{"id":"k1","to":["alice","bob"],"title":"t","data":{"a":2,"b":{"c":[1,2]}}}`,
				`{"id":"k1","to":["alice","bob"],"title":"t","urgency":"high","data":{"a":1,"b":{"c":[1,2]}}}`,
			} {
				status, _, b := n.post("/v1/notifications", other)
				if code, _ := apiError(t, b); status != http.StatusUnprocessableEntity || code != "idempotency_key_reused" {
					t.Fatalf("different request %s: %d %s, want 422 idempotency_key_reused", other, status, b)
				}
			}
			if status, h, b := n.post("/v1/notifications", first); status != http.StatusAccepted || h.Get("Idempotent-Replayed") != "true" || string(b) != string(b1) {
				t.Fatalf("first request after a refused one: %d %s", status, b)
			}
			if len(n.inbox("alice")) != 1 {
				t.Fatalf("alice has %d notifications, want 1", len(n.inbox("alice")))
			}

			// A key whose request is still in flight (another node's, say).
			if _, fresh, err := n.srv.idem.Reserve(context.Background(), "notifications:k2", "test", time.Minute); err != nil || !fresh {
				t.Fatalf("reserve: %v %v", fresh, err)
			}
			status, _, b := n.post("/v1/notifications", `{"id":"k2","to":["alice"],"title":"t"}`)
			if code, _ := apiError(t, b); status != http.StatusConflict || code != "in_progress" {
				t.Fatalf("key in use: %d %s, want 409 in_progress", status, b)
			}

			// Concurrent requests with one key: one does the work, the
			// others are told it is in progress or get its answer.
			var wg sync.WaitGroup
			type answer struct {
				status   int
				replayed bool
				body     string
			}
			answers := make([]answer, 8)
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, h, b := n.post("/v1/notifications", `{"id":"k3","to":["carol"],"title":"t"}`)
					answers[i] = answer{s, h.Get("Idempotent-Replayed") == "true", string(b)}
				}()
			}
			wg.Wait()
			fresh := 0
			var body string
			for _, a := range answers {
				switch {
				case a.status == http.StatusAccepted && !a.replayed:
					fresh++
					body = a.body
				case a.status == http.StatusAccepted, a.status == http.StatusConflict:
				default:
					t.Fatalf("concurrent: %+v", a)
				}
			}
			if fresh != 1 {
				t.Fatalf("%d requests did the work, want 1: %+v", fresh, answers)
			}
			for _, a := range answers {
				if a.replayed && a.body != body {
					t.Fatalf("replay %s differs from %s", a.body, body)
				}
			}
			if got := len(n.inbox("carol")); got != 1 {
				t.Fatalf("carol has %d notifications, want 1", got)
			}
		})
	}
}

// TestIdempotencyResultStoredBeforeFingerprintsStillReplays: a key
// completed by an older node (a bare result) replays to any body, as it
// did, rather than turning every retry into a 422.
func TestIdempotencyResultStoredBeforeFingerprintsStillReplays(t *testing.T) {
	n := startNode(t, nil)
	ctx := context.Background()
	old := `{"notifications":[{"id":"01OLD","user":"alice"}]}`
	if _, _, err := n.srv.idem.Reserve(ctx, "notifications:old", "test", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.idem.Complete(ctx, "notifications:old", []byte(old), time.Minute); err != nil {
		t.Fatal(err)
	}
	status, h, b := n.post("/v1/notifications", `{"id":"old","to":["alice"],"title":"t"}`)
	if status != http.StatusAccepted || h.Get("Idempotent-Replayed") != "true" || string(b) != old {
		t.Fatalf("%d %v %s, want the old result replayed", status, h, b)
	}
}

// failingComplete is an idempotency store whose Complete always fails.
type failingComplete struct{ idempotency.Store }

func (failingComplete) Complete(context.Context, string, []byte, time.Duration) error {
	return errors.New("store gone")
}

// TestFailedIdempotencyCompleteIsCounted: a send that went out but whose
// result could not be stored is still a 202, and it is counted, so an
// operator sees retries that will send again.
func TestFailedIdempotencyCompleteIsCounted(t *testing.T) {
	n := startNode(t, nil)
	n.srv.idem = failingComplete{n.srv.idem}
	if status, _, b := n.post("/v1/notifications", `{"id":"k1","to":["alice"],"title":"t"}`); status != http.StatusAccepted {
		t.Fatalf("send: %d %s", status, b)
	}
	if got := n.metric(`herald_idempotency_complete_failures_total{source="api"} `); got != "1" {
		t.Fatalf("complete failures counted %q, want 1", got)
	}
}

// TestUnrecordedWebhookEventIsCounted: the workers' results that say an
// event went out without its record are counted under source webhook.
func TestUnrecordedWebhookEventIsCounted(t *testing.T) {
	n := startNode(t, nil)
	n.srv.metrics.ingest.observe(ingest.Result{Outcome: ingest.Outcome{Notified: 1, Unrecorded: errors.New("store gone")}})
	if got := n.metric(`herald_idempotency_complete_failures_total{source="webhook"} `); got != "1" {
		t.Fatalf("unrecorded webhook events counted %q, want 1", got)
	}
}
