package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald/server/config"
)

// TestDemoHelpersAnswerOnlyTheDemoPage: a cross-site page can POST
// text/plain or a form without a preflight; none of that may reach the
// helpers, nor a DNS-rebound name on a loopback listener.
func TestDemoHelpersAnswerOnlyTheDemoPage(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Demo = true; c.Addr = "127.0.0.1:8080" })
	body := `{"to":["alice"],"title":"x"}`
	for _, tc := range []struct {
		name        string
		contentType string
		header      map[string]string
		host        string
		want        int
	}{
		{"text/plain from another site", "text/plain", map[string]string{"Origin": "https://evil.example"}, "", http.StatusUnsupportedMediaType},
		{"form from another site", "application/x-www-form-urlencoded", map[string]string{"Origin": "https://evil.example"}, "", http.StatusUnsupportedMediaType},
		{"text/plain, no origin", "text/plain", nil, "", http.StatusUnsupportedMediaType},
		{"JSON from another site", "application/json", map[string]string{"Origin": "https://evil.example"}, "", http.StatusForbidden},
		{"JSON, cross-site fetch metadata", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}, "", http.StatusForbidden},
		{"DNS rebinding", "application/json", map[string]string{"Origin": "http://rebound.example:8080"}, "rebound.example:8080", http.StatusForbidden},
		{"the demo page", "application/json; charset=utf-8", map[string]string{"Origin": "http://localhost:8080", "Sec-Fetch-Site": "same-origin"}, "localhost:8080", http.StatusAccepted},
		{"curl", "application/json", nil, "", http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/demo/send", strings.NewReader(body))
			req.Host = "127.0.0.1:8080"
			if tc.host != "" {
				req.Host = tc.host
			}
			req.Header.Set("Content-Type", tc.contentType)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			n.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
}
