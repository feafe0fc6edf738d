package e2e_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/server/config"
)

// docsHeraldURL is the Herald server the documentation's examples name.
const docsHeraldURL = "https://herald.example.com"

// connectSnippet returns the first example of docs/browser.md's
// "Connect" section, as written: the page an app on another origin
// would use.
func connectSnippet(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/browser.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "\n## Connect\n")
	if i < 0 {
		t.Fatal("docs/browser.md has no Connect section")
	}
	s = s[i:]
	start := strings.Index(s, "```html\n")
	if start < 0 {
		t.Fatal("docs/browser.md: the Connect section has no html example")
	}
	s = s[start+len("```html\n"):]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatal("docs/browser.md: unterminated example")
	}
	snippet := s[:end]
	if !strings.Contains(snippet, "import { Herald } from '"+docsHeraldURL+"/herald.js'") {
		t.Fatalf("the Connect example no longer imports from %s/herald.js:\n%s", docsHeraldURL, snippet)
	}
	return snippet
}

// docsAppPreamble gives the Connect example the page elements and
// functions it refers to (inbox, render, status, reloadInbox), as the app
// around it would. Lexical globals of a classic script are visible to the
// module that follows.
const docsAppPreamble = `<!doctype html>
<meta charset="utf-8"><title>app on another origin</title>
<p id="status"></p>
<ul id="inbox"></ul>
<script>
window.errors = [];
addEventListener('error', (e) => errors.push(String(e.message)));
addEventListener('unhandledrejection', (e) => errors.push(String(e.reason)));
let status = document.getElementById('status');
const inbox = document.getElementById('inbox');
inbox.markRemoved = () => {};
const render = (n) => Object.assign(document.createElement('li'), { textContent: n.title });
const reloadInbox = () => {};
</script>
`

// otherOrigin reserves an origin for an app of its own and returns it
// with serve, which starts serving page at /app.html and user tokens for
// alice at /api/herald-token (as the app's backend would mint them).
func otherOrigin(t *testing.T) (origin string, serve func(page string)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + ln.Addr().String(), func(page string) {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /app.html", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, page)
		})
		mux.HandleFunc("GET /api/herald-token", func(w http.ResponseWriter, _ *http.Request) {
			raw, err := token.Mint([]byte(testSecret), token.Claims{Subject: "alice", SessionID: token.NewSessionID(), ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, raw)
		})
		srv := httptest.NewUnstartedServer(mux)
		_ = srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)
	}
}

// TestDocumentedCrossOriginImportWorks runs docs/browser.md's Connect
// example from an app on another origin than Herald's, listed in
// HERALD_ALLOWED_ORIGINS: the module import, the connection and the
// notification handler all work.
func TestDocumentedCrossOriginImportWorks(t *testing.T) {
	snippet := connectSnippet(t)
	appOrigin, serve := otherOrigin(t)
	n := startNode(t, testConfig(t, func(c *config.Config) { c.AllowedOrigins = []string{appOrigin} }))
	serve(docsAppPreamble + strings.ReplaceAll(snippet, docsHeraldURL, n.URL()))

	ctx := newBrowser(t)
	tb := openTab(t, ctx, "app", appOrigin+"/app.html", true)
	tb.waitFor("the connection the example reports", `document.getElementById('status').textContent === 'open (ws)'`)
	send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "Across origins", "body": "b"})
	tb.waitFor("the notification in the example's inbox", `document.querySelector('#inbox li')?.textContent === 'Across origins'`)
	var errs []string
	tb.eval(`window.errors`, &errs)
	if len(errs) != 0 {
		tb.fatalf("page errors: %v", errs)
	}
}

// refusedOriginPage connects to the Herald server HERALD_URL from its own
// origin and records errors, states and the WebSockets it opens.
const refusedOriginPage = `<!doctype html>
<meta charset="utf-8"><title>app on an unlisted origin</title>
<script type="module">
import { Herald } from 'HERALD_URL/herald.js';
window.errors = []; window.states = [];
const herald = new Herald({
  url: 'HERALD_URL',
  getToken: () => fetch('/api/herald-token').then((r) => r.text()),
  minDelay: 200, maxDelay: 1000,
});
window.herald = herald;
herald.on('state', (s) => states.push(s.state));
herald.on('error', (e) => errors.push({ message: String(e.error && e.error.message), status: e.status, code: e.code }));
herald.connect();
</script>`

// TestRefusedOriginReportsAndStops: a page on an origin missing from
// HERALD_ALLOWED_ORIGINS gets an error event that names the setting, and
// stops reconnecting instead of looping silently.
func TestRefusedOriginReportsAndStops(t *testing.T) {
	appOrigin, serve := otherOrigin(t)
	n := startNode(t, testConfig(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example.com"} }))
	serve(strings.ReplaceAll(refusedOriginPage, "HERALD_URL", n.URL()))

	ctx := newBrowser(t)
	tb := openTab(t, ctx, "app", appOrigin+"/app.html", true)
	tb.waitFor("the error event", `window.errors && errors.length > 0`)
	var errs []struct {
		Message string `json:"message"`
		Status  int    `json:"status"`
		Code    string `json:"code"`
	}
	tb.eval(`window.errors`, &errs)
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "origin not allowed by HERALD_ALLOWED_ORIGINS") ||
		!strings.Contains(errs[0].Message, appOrigin) || errs[0].Status != 403 || errs[0].Code != "origin_not_allowed" {
		tb.fatalf("error events %+v, want one naming HERALD_ALLOWED_ORIGINS and %s", errs, appOrigin)
	}
	var sockets int
	tb.eval(`window.sockets.length`, &sockets)
	// Unstopped, the client would try again within a second (maxDelay).
	time.Sleep(2500 * time.Millisecond)
	var after int
	tb.eval(`window.sockets.length`, &after)
	var state string
	tb.eval(`herald.state`, &state)
	if after != sockets || state != "closed" {
		tb.fatalf("after the refusal: %d WebSockets (was %d), state %s; want no more attempts, closed", after, sockets, state)
	}
}
