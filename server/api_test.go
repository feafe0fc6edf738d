package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
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
