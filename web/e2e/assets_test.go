package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/server"
	"github.com/heraldhq/herald/server/config"
)

func newHandler(t *testing.T, mutate func(*config.Config)) http.Handler {
	t.Helper()
	srv, err := server.New(context.Background(), testConfig(t, mutate), testLogger())
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv.Handler()
}

func do(t *testing.T, h http.Handler, method, path, bearer string, body any, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAssetsServedWithTypesAndValidators(t *testing.T) {
	h := newHandler(t, nil)
	cases := []struct {
		path, contentType, swAllowed, contains string
	}{
		{"/herald.js", "text/javascript; charset=utf-8", "", "export class Herald"},
		{"/herald-util.js", "text/javascript; charset=utf-8", "", "export function cursorAfter"},
		{"/herald-storage.js", "text/javascript; charset=utf-8", "", "export async function claimPopup"},
		{"/herald-toast.js", "text/javascript; charset=utf-8", "", "export function showToast"},
		{"/herald-sw.js", "text/javascript; charset=utf-8", "/", "notificationclick"},
		{"/herald.d.ts", "text/plain; charset=utf-8", "", "export class Herald"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := do(t, h, http.MethodGet, c.path, "", nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d", c.path, rec.Code)
			}
			hd := rec.Header()
			if got := hd.Get("Content-Type"); got != c.contentType {
				t.Errorf("Content-Type = %q, want %q", got, c.contentType)
			}
			if got := hd.Get("Service-Worker-Allowed"); got != c.swAllowed {
				t.Errorf("Service-Worker-Allowed = %q, want %q", got, c.swAllowed)
			}
			// Apps on other origins import the client: CORS for anyone,
			// without credentials.
			if got := hd.Get("Access-Control-Allow-Origin"); got != "*" || hd.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("Access-Control-Allow-Origin = %q (credentials %q), want * without credentials", got, hd.Get("Access-Control-Allow-Credentials"))
			}
			if hd.Get("Cache-Control") == "" || hd.Get("ETag") == "" {
				t.Errorf("Cache-Control %q, ETag %q: want both", hd.Get("Cache-Control"), hd.Get("ETag"))
			}
			if !strings.Contains(rec.Body.String(), c.contains) {
				t.Errorf("body lacks %q", c.contains)
			}
			again := do(t, h, http.MethodGet, c.path, "", nil, "If-None-Match", hd.Get("ETag"))
			if again.Code != http.StatusNotModified {
				t.Errorf("revalidation with the ETag: %d, want 304", again.Code)
			}
		})
	}
}

func TestDemoHelpersExistOnlyInDemoMode(t *testing.T) {
	h := newHandler(t, nil)
	if rec := do(t, h, http.MethodGet, "/", "", nil); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("GET / without demo: %d %q, want the plain-text index", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, p := range []string{"/demo/token", "/demo/send", "/demo/webhook/talkjs"} {
		if rec := do(t, h, http.MethodPost, p, "", map[string]any{"user": "alice", "to": []string{"alice"}, "title": "x"}); rec.Code != http.StatusNotFound {
			t.Errorf("POST %s without demo: %d, want 404", p, rec.Code)
		}
	}
	if rec := do(t, h, http.MethodGet, "/demo.js", "", nil); rec.Code != http.StatusNotFound {
		t.Errorf("GET /demo.js without demo: %d, want 404", rec.Code)
	}
}

func TestDemoTokenAndSend(t *testing.T) {
	h := newHandler(t, func(c *config.Config) { c.Demo = true })
	if rec := do(t, h, http.MethodGet, "/", "", nil); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / in demo mode: %d %q, want the demo page", rec.Code, rec.Header().Get("Content-Type"))
	}

	rec := do(t, h, http.MethodPost, "/demo/token", "", map[string]string{"user": "alice"})
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /demo/token: %d %s", rec.Code, rec.Body)
	}
	var tok struct{ Token string }
	_ = json.Unmarshal(rec.Body.Bytes(), &tok)
	v, err := token.NewVerifier(token.VerifierOptions{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), tok.Token)
	if err != nil {
		t.Fatalf("demo token does not verify: %v", err)
	}
	if claims.Subject != "alice" || claims.SessionID == "" || time.Until(claims.ExpiresAt) > time.Hour || time.Until(claims.ExpiresAt) < 50*time.Minute {
		t.Errorf("claims %+v: want sub alice, a session id, about an hour", claims)
	}
	if rec := do(t, h, http.MethodPost, "/demo/token", "", map[string]string{"user": ""}); rec.Code != http.StatusBadRequest {
		t.Errorf("empty user: %d, want 400", rec.Code)
	}

	rec = do(t, h, http.MethodPost, "/demo/send", "", map[string]any{"to": []string{"alice"}, "title": "Demo", "body": "hi", "tag": "d", "url": "/x"})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /demo/send: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, http.MethodGet, "/v1/notifications", tok.Token, nil)
	var inbox struct {
		Notifications []struct {
			Title, Tag, URL string
			Data            map[string]string
		}
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &inbox)
	if len(inbox.Notifications) != 1 {
		t.Fatalf("inbox after /demo/send: %s", rec.Body)
	}
	got := inbox.Notifications[0]
	if got.Title != "Demo" || got.Tag != "d" || got.URL != "/x" || got.Data["senderId"] != "bob" {
		t.Errorf("inbox entry %+v: want the sent fields, from bob", got)
	}
	if rec := do(t, h, http.MethodPost, "/demo/send", "", map[string]any{"to": []string{}, "title": "x"}); rec.Code != http.StatusBadRequest {
		t.Errorf("send without recipients: %d, want 400", rec.Code)
	}
}

// TestDemoWebhookRelaysTheAnswer checks the relay, not the webhook
// endpoints: whatever /webhooks/{provider} answers comes back with its
// status.
func TestDemoWebhookRelaysTheAnswer(t *testing.T) {
	h := newHandler(t, func(c *config.Config) {
		c.Demo = true
		c.TalkJSSecret = "talkjs-demo-secret"
		c.CometChatUser, c.CometChatPassword = "cometchat", "demo-password"
	})
	for _, p := range []string{"talkjs", "cometchat"} {
		rec := do(t, h, http.MethodPost, "/demo/webhook/"+p, "", map[string]string{"to": "alice"})
		var out struct {
			Webhook string
			Status  int
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: %d %s", p, rec.Code, rec.Body)
		}
		if out.Webhook != "/webhooks/"+p || out.Status != rec.Code {
			t.Errorf("%s: answered %d %s; want the endpoint's status relayed", p, rec.Code, rec.Body)
		}
	}
	if rec := do(t, h, http.MethodPost, "/demo/webhook/nope", "", map[string]string{"to": "alice"}); rec.Code != http.StatusNotFound {
		t.Errorf("unknown provider: %d, want 404", rec.Code)
	}
	unconfigured := newHandler(t, func(c *config.Config) { c.Demo = true })
	if rec := do(t, unconfigured, http.MethodPost, "/demo/webhook/talkjs", "", map[string]string{"to": "alice"}); rec.Code != http.StatusConflict {
		t.Errorf("talkjs without a secret: %d, want 409", rec.Code)
	}
}

func TestFaviconServed(t *testing.T) {
	for _, demo := range []bool{false, true} {
		h := newHandler(t, func(c *config.Config) { c.Demo = demo })
		rec := do(t, h, http.MethodGet, "/favicon.svg", "", nil)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/svg+xml" || !strings.Contains(rec.Body.String(), "<svg") {
			t.Errorf("demo %v: GET /favicon.svg: %d %q", demo, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	page := do(t, newHandler(t, func(c *config.Config) { c.Demo = true }), http.MethodGet, "/", "", nil).Body.String()
	if !strings.Contains(page, `<link rel="icon" href="/favicon.svg"`) {
		t.Errorf("the demo page does not name its icon")
	}
}

// TestDemoSamplesHaveDistinctTags: the demo's test notification and its
// two sample webhooks carry tags of their own, so that none replaces
// another's popup, and each has a URL to open on click.
func TestDemoSamplesHaveDistinctTags(t *testing.T) {
	h := newHandler(t, func(c *config.Config) {
		c.Demo = true
		c.TalkJSSecret = "talkjs-demo-secret"
		c.CometChatUser, c.CometChatPassword = "cometchat", "demo-password"
	})
	// The send form's defaults, as the page has them.
	page := do(t, h, http.MethodGet, "/", "", nil).Body.String()
	field := func(name string) string {
		i := strings.Index(page, `name="`+name+`" value="`)
		if i < 0 {
			t.Fatalf("the demo page has no %s field with a value", name)
		}
		v := page[i+len(`name="`+name+`" value="`):]
		return v[:strings.IndexByte(v, '"')]
	}
	rec := do(t, h, http.MethodPost, "/demo/send", "", map[string]any{"to": []string{"alice"}, "title": "Bob", "body": "b", "tag": field("tag"), "url": field("url")})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /demo/send: %d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{"talkjs", "cometchat"} {
		if rec := do(t, h, http.MethodPost, "/demo/webhook/"+p, "", map[string]string{"to": "alice"}); rec.Code != http.StatusOK {
			t.Fatalf("POST /demo/webhook/%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	var inbox struct {
		Notifications []struct {
			Tag, URL string
			Data     map[string]any
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		rec := do(t, h, http.MethodGet, "/v1/notifications", mint(t, "alice"), nil)
		_ = json.Unmarshal(rec.Body.Bytes(), &inbox)
		if len(inbox.Notifications) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(inbox.Notifications) != 3 {
		t.Fatalf("inbox has %d notifications, want the three samples", len(inbox.Notifications))
	}
	byTag := map[string]string{}
	for _, n := range inbox.Notifications {
		provider, _ := n.Data["provider"].(string)
		if n.Tag == "" || n.URL == "" {
			t.Errorf("%s sample: tag %q, url %q; want both", provider, n.Tag, n.URL)
		}
		if other, dup := byTag[n.Tag]; dup {
			t.Errorf("the %s and %s samples share the tag %q", other, provider, n.Tag)
		}
		byTag[n.Tag] = provider
	}
}

// TestTypesDeclareEveryEventAndOption keeps herald.d.ts in step with
// herald.js: every event the client emits is in HeraldEventMap, which
// types on() and addEventListener alike, and every option of the JSDoc
// typedef is in HeraldOptions.
func TestTypesDeclareEveryEventAndOption(t *testing.T) {
	js, err := os.ReadFile("../herald.js")
	if err != nil {
		t.Fatal(err)
	}
	dts, err := os.ReadFile("../herald.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	block := func(src, start string) string {
		i := strings.Index(src, start)
		if i < 0 {
			t.Fatalf("no %q", start)
		}
		rest := src[i:]
		return rest[:strings.Index(rest, "\n}")]
	}
	eventMap := block(string(dts), "export interface HeraldEventMap {")
	for _, m := range regexp.MustCompile(`#emit\('([a-z]+)'`).FindAllStringSubmatch(string(js), -1) {
		if !regexp.MustCompile(`(?m)^\s+` + m[1] + `: `).MatchString(eventMap) {
			t.Errorf("herald.js emits %q; HeraldEventMap lacks it", m[1])
		}
	}
	options := block(string(dts), "export interface HeraldOptions {")
	typedef := block(string(js), "@typedef {object} HeraldOptions")
	for _, m := range regexp.MustCompile(`@property \{[^\n]*\} \[(\w+)\]`).FindAllStringSubmatch(typedef, -1) {
		if !regexp.MustCompile(`(?m)^\s+` + m[1] + `\?: `).MatchString(options) {
			t.Errorf("option %q is not in HeraldOptions", m[1])
		}
	}
	for _, method := range []string{"addEventListener", "removeEventListener"} {
		if !strings.Contains(string(dts), method+"<K extends keyof HeraldEventMap>(type: K, listener: (this: Herald, event: CustomEvent<HeraldEventMap[K]>) => void") {
			t.Errorf("herald.d.ts does not type %s by HeraldEventMap", method)
		}
	}
}
