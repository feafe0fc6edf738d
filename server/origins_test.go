package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/lograte"
	"github.com/heraldhq/herald/server/config"
)

// lockedBuffer is a log destination safe for concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

func TestRefusedOriginIsLoggedOncePerMinute(t *testing.T) {
	var logs lockedBuffer
	now := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	s := &Server{
		cfg:            &config.Config{AllowedOrigins: []string{"https://app.example.com"}},
		log:            slog.New(slog.NewJSONHandler(&logs, nil)),
		refusedOrigins: lograte.NewWithClock(refusedLogEvery, func() time.Time { return now }),
	}
	passed := 0
	h := s.requireOrigin(func(http.ResponseWriter, *http.Request) { passed++ })
	refuse := func(origin string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "http://herald.example.com/v1/ws", nil)
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		h(rec, req)
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusForbidden || body.Error.Code != "origin_not_allowed" {
			t.Fatalf("origin %s: %d %s, want 403 origin_not_allowed", origin, rec.Code, rec.Body)
		}
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
			t.Fatalf("origin %s: Access-Control-Allow-Origin %q: the refused page cannot read the refusal", origin, got)
		}
	}
	logged := func() map[string]int {
		t.Helper()
		count := map[string]int{}
		for _, l := range logs.lines() {
			var rec struct{ Origin string }
			if l != "" && json.Unmarshal([]byte(l), &rec) == nil && rec.Origin != "" {
				count[rec.Origin]++
			}
		}
		return count
	}

	for range 5 {
		refuse("https://wrong.example.com")
	}
	refuse("http://localhost:3000")
	now = now.Add(59 * time.Second)
	refuse("https://wrong.example.com")
	if got := logged(); got["https://wrong.example.com"] != 1 || got["http://localhost:3000"] != 1 || len(got) != 2 {
		t.Fatalf("logged %v, want each refused origin once within the minute", got)
	}
	now = now.Add(2 * time.Second)
	refuse("https://wrong.example.com")
	if got := logged(); got["https://wrong.example.com"] != 2 {
		t.Fatalf("logged %v, want the origin again after a minute", got)
	}

	req := httptest.NewRequest(http.MethodGet, "http://herald.example.com/v1/ws", nil)
	req.Header.Set("Origin", "https://app.example.com")
	h(httptest.NewRecorder(), req)
	if passed != 1 {
		t.Fatalf("an allowed origin did not pass")
	}
}

// TestRefusedOriginBeforeAuthentication: a page on a refused origin learns
// so from a request without a token, which is what the browser client
// sends to find out why its WebSocket failed.
func TestRefusedOriginBeforeAuthentication(t *testing.T) {
	n := startNode(t, func(c *configT) { c.AllowedOrigins = []string{"https://app.example.com"} })
	for _, path := range []string{"/v1/sse", "/v1/ws"} {
		req, _ := http.NewRequest(http.MethodGet, n.ts.URL+path, nil)
		req.Header.Set("Origin", "https://wrong.example.com")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s from a refused origin without a token: %d (CORS %q), want 403 readable by the page",
				path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		req.Header.Set("Origin", "https://app.example.com")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s from an allowed origin without a token: %d, want 401", path, resp.StatusCode)
		}
	}
}
