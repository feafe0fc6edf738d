package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
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

// TestDemoPageIsAnInstallableWebApp: iOS and iPadOS deliver Web Push only
// to a web app opened from the Home Screen, so the demo page links a
// manifest that declares it standalone, with icons that are served.
func TestDemoPageIsAnInstallableWebApp(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Demo = true })
	get := func(path string) (*httptest.ResponseRecorder, []byte) {
		rec := httptest.NewRecorder()
		n.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec, rec.Body.Bytes()
	}
	_, page := get("/")
	if !strings.Contains(string(page), `<link rel="manifest" href="/manifest.webmanifest">`) || !strings.Contains(string(page), `rel="apple-touch-icon"`) {
		t.Fatal("the demo page links no manifest or touch icon")
	}
	rec, body := get("/manifest.webmanifest")
	var m struct {
		Display string
		Icons   []struct{ Src, Sizes, Type string }
	}
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/manifest+json" || json.Unmarshal(body, &m) != nil || m.Display != "standalone" || len(m.Icons) < 2 {
		t.Fatalf("manifest: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), body)
	}
	for _, ic := range m.Icons {
		rec, body := get(ic.Src)
		cfg, err := png.DecodeConfig(bytes.NewReader(body))
		if rec.Code != http.StatusOK || err != nil || fmt.Sprintf("%dx%d", cfg.Width, cfg.Height) != ic.Sizes {
			t.Fatalf("icon %s: %d %v %dx%d, want a %s PNG", ic.Src, rec.Code, err, cfg.Width, cfg.Height, ic.Sizes)
		}
	}
	// Outside demo mode there is no demo page to install.
	plain := startNode(t, nil)
	rec = httptest.NewRecorder()
	plain.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/manifest.webmanifest", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("manifest outside demo mode: %d", rec.Code)
	}
}
