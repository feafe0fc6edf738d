package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/server"
	"github.com/heraldhq/herald/server/config"
)

const (
	testSecret = "browser-test-secret-0123456789abcdef"
	testAPIKey = "browser-test-api-key"
	// waitLong bounds every wait for the browser: the machine may be slow.
	waitLong = 45 * time.Second
)

// node is a Herald server running in process on a fixed address, so that
// it can be restarted on the same port and data directory.
type node struct {
	t    *testing.T
	cfg  *config.Config
	addr string
	srv  *server.Server
	done chan error
}

func testConfig(t *testing.T, mutate func(*config.Config)) *config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.JWTSecret = testSecret
	cfg.APIKey = testAPIKey
	cfg.AckTimeout = 2 * time.Second
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

func testLogger() *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startNode starts a node on a free port.
func startNode(t *testing.T, cfg *config.Config) *node {
	t.Helper()
	n := &node{t: t, cfg: cfg, addr: "127.0.0.1:0"}
	n.start(nil)
	t.Cleanup(n.stop)
	return n
}

// start opens the back-ends, runs beforeServe (with the server built but
// not yet listening), then serves on n.addr.
func (n *node) start(beforeServe func(*server.Server)) {
	n.t.Helper()
	srv, err := server.New(context.Background(), n.cfg, testLogger())
	if err != nil {
		n.t.Fatalf("server.New: %v", err)
	}
	if beforeServe != nil {
		beforeServe(srv)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the old listener's port may take a moment to free
		ln, err = net.Listen("tcp", n.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatalf("listen %s: %v", n.addr, err)
	}
	n.addr = ln.Addr().String()
	n.srv, n.done = srv, make(chan error, 1)
	go func() { n.done <- srv.Serve(ln) }()
}

func (n *node) stop() {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Logf("shutdown: %v", err)
	}
	<-n.done
	n.srv = nil
}

// restart stops the node and starts a new one on the same address and data
// directory; beforeServe runs while nothing listens.
func (n *node) restart(beforeServe func(*server.Server)) {
	n.t.Helper()
	n.stop()
	n.start(beforeServe)
}

func (n *node) URL() string { return "http://" + n.addr }

// send posts to the server API through h and returns the notification ids.
func send(t *testing.T, h http.Handler, body map[string]any) []string {
	t.Helper()
	b, _ := json.Marshal(body)
	req := httptest.NewRequest(http.MethodPost, "/v1/notifications", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /v1/notifications: %d %s", rec.Code, rec.Body)
	}
	var resp struct {
		Notifications []struct{ ID string } `json:"notifications"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(resp.Notifications))
	for i, n := range resp.Notifications {
		ids[i] = n.ID
	}
	return ids
}

func mint(t *testing.T, user string) string {
	t.Helper()
	raw, err := token.Mint([]byte(testSecret), token.Claims{Subject: user, SessionID: token.NewSessionID(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// appPage is the test's web app. It loads herald.js like any app would and
// records what the library reports in window.events, window.states and
// window.errors. Query: user, transport, sw=1 to register the service
// worker, catchup (the catchUp option), navigate=1 to let clicks navigate.
const appPage = `<!doctype html>
<meta charset="utf-8"><title>test app</title>
<script type="module">
import { Herald } from '/herald.js';
const q = new URLSearchParams(location.search);
window.events = []; window.states = []; window.errors = [];
addEventListener('error', (e) => errors.push(String(e.message)));
addEventListener('unhandledrejection', (e) => errors.push(String(e.reason)));
window.tokenCalls = 0;
const herald = new Herald({
  // badtoken=1: the first token is refused, as an expired one would be.
  getToken: async () => (++tokenCalls === 1 && q.get('badtoken')) ? 'not-a-valid-token'
    : (await fetch('/token?user=' + encodeURIComponent(q.get('user')))).text(),
  transport: q.get('transport') || 'auto',
  minDelay: 200, maxDelay: 1000,
  ...(q.get('catchup') ? { catchUp: q.get('catchup') } : {}),
});
window.herald = herald;
herald.on('notification', (n) => events.push({ type: 'notification', id: n.id, title: n.title }));
herald.on('retract', (r) => events.push({ type: 'retract', id: r.id, tag: r.tag }));
herald.on('read', (r) => events.push({ type: 'read', tag: r.tag, ids: r.ids }));
herald.on('unread', (u) => events.push({ type: 'unread', total: u.total }));
herald.on('toast', (n) => events.push({ type: 'toast', id: n.id }));
herald.on('reset', (r) => events.push({ type: 'reset', cursor: r.cursor }));
// navigate=1: clicks open their URL as they would in an app.
herald.on('click', (c, e) => { if (!q.get('navigate')) e.preventDefault(); events.push({ type: 'click', id: c.notification.id, url: c.url }); });
herald.on('state', (s) => states.push(s.state + '/' + s.transport));
herald.on('error', (e) => errors.push(String(e.error)));
if (q.get('sw')) await navigator.serviceWorker.register('/herald-sw.js').then(() => navigator.serviceWorker.ready);
herald.connect();
window.ready = true;
</script>`

// popupSpy runs before any page script: it records every Notification the
// page constructs in window.popups, and every WebSocket in window.sockets
// (so that a test can hand the client a frame no server would send).
const popupSpy = `(() => {
  window.sockets = [];
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(...args) {
      super(...args);
      window.sockets.push(this);
    }
  };
  window.popups = [];
  const Native = window.Notification;
  if (!Native) return;
  window.Notification = class extends Native {
    constructor(title, options = {}) {
      super(title, options);
      this.record = { title, body: options.body, tag: options.tag, id: options.data && options.data.id };
      window.popups.push(this.record);
    }
    close() {
      this.record.closed = true;
      super.close();
    }
  };
})();`

// app serves the test app and proxies everything else to the Herald node,
// as a deployment behind a reverse proxy would. It can refuse WebSocket
// upgrades, like a proxy that does not pass them, and it records the paths
// of the requests it forwards and the answers to the device calls.
type app struct {
	*httptest.Server
	blockWS atomic.Bool

	mu      sync.Mutex
	paths   []string
	devices []string // "METHOD path status" of the forwarded /v1/devices calls
}

// statusRecorder calls record with the status of a proxied response
// before any of it reaches the client.
type statusRecorder struct {
	http.ResponseWriter
	record func(status int)
	done   bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.done {
		r.done = true
		r.record(code)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.done {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// deviceCalls returns the device calls the proxy forwarded, each as
// "METHOD path status".
func (a *app) deviceCalls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.devices)
}

func startApp(t *testing.T, n *node) *app {
	t.Helper()
	target, _ := url.Parse(n.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{DisableKeepAlives: true} // the node restarts under it
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	a := &app{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, appPage)
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		raw, err := token.Mint([]byte(testSecret), token.Claims{Subject: r.URL.Query().Get("user"), SessionID: token.NewSessionID(), ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, raw)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/v1/devices") {
			proxy.ServeHTTP(&statusRecorder{ResponseWriter: w, record: func(status int) {
				a.mu.Lock()
				a.devices = append(a.devices, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, status))
				a.mu.Unlock()
			}}, r)
			return
		}
		if r.URL.Path == "/v1/ws" && a.blockWS.Load() {
			http.Error(w, "websocket not allowed here", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func (a *app) requests(prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, p := range a.paths {
		if strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// chromium returns the browser to test with, or skips the test when there
// is none (fails instead when HERALD_REQUIRE_BROWSER=1).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("HERALD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("HERALD_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium found and HERALD_REQUIRE_BROWSER=1")
	}
	t.Skip("no chromium found; install it or set HERALD_CHROMIUM")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and returns
// the context of its first tab. Everything ends with the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors", true), // httptest TLS servers
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one page of the browser, with its console kept for failure
// reports.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu      sync.Mutex
	console []string
}

// openTab opens a new tab in the browser of parent (or uses parent's own
// tab when first is true), installs the popup spy and loads url.
func openTab(t *testing.T, parent context.Context, name, url string, first bool) *tab {
	t.Helper()
	ctx := parent
	if !first {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(parent)
		t.Cleanup(cancel)
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
			t.Fatalf("open tab: %v", err)
		}
	}
	tb := &tab{t: t, ctx: ctx, name: name}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m.String())
			tb.mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: popupSpy}); err != nil {
		t.Fatalf("install popup spy: %v", err)
	}
	tb.navigate(url)
	return tb
}

func (tb *tab) navigate(url string) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Navigate(url)); err != nil {
		tb.t.Fatalf("%s: navigate %s: %v", tb.name, url, err)
	}
}

// eval evaluates expr (awaiting a promise) and decodes its JSON value into out.
func (tb *tab) eval(expr string, out any) {
	tb.t.Helper()
	raw, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fatalf("eval %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.fatalf("eval %s: decode %s: %v", expr, raw, err)
		}
	}
}

// waitFor polls expr until it is truthy.
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool]("(async () => !!(await ("+expr+")))()", chromedp.EvalAwaitPromise))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.fatalf("timed out waiting for %s (%s); last error: %v", what, expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fatalf fails the test with what the page recorded.
func (tb *tab) fatalf(format string, args ...any) {
	tb.t.Helper()
	var state string
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	if raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](
		`JSON.stringify({events: window.events, states: window.states, errors: window.errors, popups: window.popups, state: window.herald && herald.state, transport: window.herald && herald.transport})`)); err == nil {
		state = string(raw)
	}
	tb.mu.Lock()
	console := strings.Join(tb.console, "\n  ")
	tb.mu.Unlock()
	tb.t.Fatalf("%s: %s\npage: %s\nconsole:\n  %s", tb.name, fmt.Sprintf(format, args...), state, console)
}

// setNotificationPermission grants or denies notifications to origin.
func setNotificationPermission(t *testing.T, ctx context.Context, origin string, setting browser.PermissionSetting) {
	t.Helper()
	_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"},
		Setting:    setting,
		Origin:     origin,
	})
	if err != nil {
		t.Fatalf("set notification permission: %v", err)
	}
}

// pageEvent is one entry of window.events.
type pageEvent struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Title string `json:"title"`
	Tag   string `json:"tag"`
	URL   string `json:"url"`
}

func (tb *tab) events() []pageEvent {
	tb.t.Helper()
	var evs []pageEvent
	tb.eval(`window.events || []`, &evs)
	return evs
}

type popup struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Tag   string `json:"tag"`
	ID    string `json:"id"`
}

func (tb *tab) popups() []popup {
	tb.t.Helper()
	var ps []popup
	tb.eval(`window.popups || []`, &ps)
	return ps
}

// injectFrame hands the page's live WebSocket a server frame, as if the
// server had sent it.
func (tb *tab) injectFrame(frame any) {
	tb.t.Helper()
	b, _ := json.Marshal(frame)
	tb.eval(`(() => {
		const ws = window.sockets.findLast((s) => s.readyState === WebSocket.OPEN);
		if (!ws) throw new Error('no open WebSocket');
		ws.dispatchEvent(new MessageEvent('message', { data: `+jsString(string(b))+` }));
		return true;
	})()`, nil)
}

// notificationIDs returns the ids of the notification events, in order.
func notificationIDs(evs []pageEvent) []string {
	var ids []string
	for _, e := range evs {
		if e.Type == "notification" {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
