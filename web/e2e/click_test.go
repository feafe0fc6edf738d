package e2e_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// notificationFrame is the WebSocket frame of a notification.
func notificationFrame(id, title, url string) map[string]any {
	return map[string]any{"type": "notification", "notification": map[string]any{
		"id": id, "title": title, "body": "body of " + title, "url": url,
		"created_at": time.Now().UTC().Format(time.RFC3339Nano),
	}}
}

// TestClickOpensOnlyHTTPURLs checks that a notification's url opens on
// click only when it is http(s): a javascript: url, which the server
// refuses but which a stored or forged notification may still carry,
// runs nothing, from the toast or from the service worker, while an https
// one navigates.
func TestClickOpensOnlyHTTPURLs(t *testing.T) {
	landing := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>landing</title>landed`)
	}))
	t.Cleanup(landing.Close)
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingDenied) // toasts
	page := a.URL + "/app.html?user=alice&navigate=1&sw=1"
	tb := openTab(t, ctx, "alice", page, true)
	tb.waitFor("the service worker", `navigator.serviceWorker.controller`)
	tb.waitFor("the connection", connected)

	notRun := func(what string) {
		t.Helper()
		time.Sleep(500 * time.Millisecond) // a navigation to the URL would run by now
		var pwned any
		tb.eval(`window.pwned ?? null`, &pwned)
		var href string
		tb.eval(`location.href`, &href)
		if pwned != nil || href != page {
			tb.fatalf("%s: the javascript: URL ran (window.pwned = %v, location %s)", what, pwned, href)
		}
	}
	clickToast := func(id string) {
		t.Helper()
		sel := `#herald-toasts .herald-toast[data-id="` + id + `"]`
		tb.waitFor("the toast of "+id, `document.querySelector(`+jsString(sel)+`)`)
		if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			tb.fatalf("click toast %s: %v", id, err)
		}
	}

	tb.injectFrame(notificationFrame("js-toast", "Script", "javascript:window.pwned='toast'"))
	clickToast("js-toast")
	tb.waitFor("the click event", `window.events.some((e) => e.type === 'click' && e.id === 'js-toast' && e.url === undefined)`)
	notRun("toast click")

	// The service worker's click hands its URL to the open tab.
	swEval(t, tb, `onNotificationClick({ data: { id: 'js-sw', url: "javascript:window.pwned='sw'" }, title: 'Script', body: 'b', tag: '' })`)
	tb.waitFor("the click event", `window.events.some((e) => e.type === 'click' && e.id === 'js-sw' && e.url === undefined)`)
	notRun("service worker click")

	target := landing.URL + "/landing.html"
	tb.injectFrame(notificationFrame("https-toast", "Link", target))
	clickToast("https-toast")
	tb.waitFor("the https page", `location.href === `+jsString(target)+` && document.body.textContent === 'landed'`)
}
