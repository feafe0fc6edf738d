package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/heraldhq/herald/server"
	"github.com/heraldhq/herald/server/config"
)

const connected = `window.herald && herald.state === 'open'`

// countNotifications is a page expression: how many notification events
// the page has seen.
const countNotifications = `(window.events || []).filter((e) => e.type === 'notification').length`

func TestAPINotificationRaisesPopup(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice", true)
	tb.waitFor("the connection", connected)

	ids := send(t, n.srv.Handler(), map[string]any{
		"to": []string{"alice"}, "title": "Bob", "body": "Hello!", "tag": "c1", "url": "/chat/c1",
	})
	tb.waitFor("a popup", `window.popups.length >= 1`)
	got := tb.popups()
	want := popup{Title: "Bob", Body: "Hello!", Tag: "c1", ID: ids[0]}
	if len(got) != 1 || got[0] != want {
		tb.fatalf("popups = %+v, want [%+v]", got, want)
	}
	if ev := notificationIDs(tb.events()); !slices.Equal(ev, ids) {
		tb.fatalf("notification events %v, want %v", ev, ids)
	}
	var transport string
	tb.eval(`herald.transport`, &transport)
	if transport != "ws" {
		tb.fatalf("transport = %q, want ws", transport)
	}
}

func TestSSEFallbackWhenWebSocketIsBlocked(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	a.blockWS.Store(true)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice", true)
	tb.waitFor("the SSE connection", connected+` && herald.transport === 'sse'`)
	if a.requests("GET /v1/ws") == 0 {
		tb.fatalf("the client never tried WebSocket")
	}

	ids := send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "Over SSE", "body": "fallback", "tag": "sse"})
	tb.waitFor("a popup", `window.popups.length >= 1`)
	if got := tb.popups(); len(got) != 1 || got[0].ID != ids[0] || got[0].Title != "Over SSE" {
		tb.fatalf("popups = %+v, want one for %s", got, ids[0])
	}
	// SSE clients ack over HTTP.
	deadline := time.Now().Add(waitLong)
	for a.requests("POST /v1/ack") == 0 {
		if time.Now().After(deadline) {
			tb.fatalf("no POST /v1/ack after the notification")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRestartResumesWithoutLossOrDuplicates(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	// catchUp 'all': every missed notification raises its popup, so the
	// popups show each notification once (TestCatchUpPopups has the rest).
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice&catchup=all", true)
	tb.waitFor("the connection", connected)

	sendN := func(srv *server.Server, i int) string {
		return send(t, srv.Handler(), map[string]any{"to": []string{"alice"}, "title": fmt.Sprintf("n%d", i), "body": "b"})[0]
	}
	want := []string{sendN(n.srv, 1)}
	tb.waitFor("the first notification", countNotifications+` === 1`)

	// Restart on the same port and data directory; two notifications are
	// published while nothing listens.
	n.restart(func(srv *server.Server) {
		want = append(want, sendN(srv, 2), sendN(srv, 3))
	})
	tb.waitFor("the missed notifications", countNotifications+` >= 3`)
	tb.waitFor("the reconnection", connected)
	want = append(want, sendN(n.srv, 4))
	tb.waitFor("the live notification", countNotifications+` >= 4`)

	if got := notificationIDs(tb.events()); !slices.Equal(got, want) {
		tb.fatalf("notification events %v, want %v (each once, in order)", got, want)
	}
	tb.waitFor("the popups", `window.popups.length >= 4`)
	var shown []string
	for _, p := range tb.popups() {
		shown = append(shown, p.ID)
	}
	if !slices.Equal(shown, want) {
		tb.fatalf("popups for %v, want %v", shown, want)
	}

	// A reload resumes from the cursor kept in localStorage: it gets what
	// was sent while the page was away, and nothing it had already seen.
	tb.navigate("about:blank")
	away := sendN(n.srv, 5)
	tb.navigate(a.URL + "/app.html?user=alice&catchup=all")
	tb.waitFor("the notification sent while away", countNotifications+` >= 1`)
	tb.waitFor("the connection", connected)
	last := sendN(n.srv, 6)
	tb.waitFor("the live notification", countNotifications+` >= 2`)
	if got := notificationIDs(tb.events()); !slices.Equal(got, []string{away, last}) {
		tb.fatalf("after reload: notification events %v, want %v", got, []string{away, last})
	}
}

func TestRefusedTokenIsReplaced(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice&badtoken=1", true)
	tb.waitFor("the connection with a fresh token", connected)
	var calls int
	tb.eval(`tokenCalls`, &calls)
	if calls < 2 {
		tb.fatalf("getToken called %d times, want again after the refusal", calls)
	}
	var transport string
	tb.eval(`herald.transport`, &transport)
	if transport != "ws" {
		tb.fatalf("transport = %q: a refused token must not count as WebSocket being blocked", transport)
	}
}

func TestStaleCursorEmitsReset(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "before", "body": "b"})
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice", true)
	tb.waitFor("the connection", connected)
	// A cursor from a history that no longer exists, as after data loss.
	key := "herald:cursor:" + a.URL + ":alice"
	tb.eval(`localStorage.setItem(`+jsString(key)+`, 'gonegonego-7'), true`, nil)
	tb.navigate(a.URL + "/app.html?user=alice")
	tb.waitFor("the reset event", `window.events.some((e) => e.type === 'reset')`)
	tb.waitFor("the connection", connected)
	var stored string
	tb.eval(`localStorage.getItem(`+jsString(key)+`)`, &stored)
	if stored == "gonegonego-7" || stored == "" {
		tb.fatalf("stored cursor %q after reset, want the history's head", stored)
	}
	id := send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "after", "body": "b"})[0]
	tb.waitFor("live delivery after the reset", `window.events.some((e) => e.id === `+jsString(id)+`)`)
}

func TestOwnMessageRaisesNoPopup(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice", true)
	tb.waitFor("the connection", connected)

	own := send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "Alice", "body": "my own message", "data": map[string]string{"senderId": "alice"}})
	other := send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "Bob", "body": "Bob's message", "data": map[string]string{"senderId": "bob"}})
	tb.waitFor("both notifications", countNotifications+` === 2`)
	tb.waitFor("Bob's popup", `window.popups.some((p) => p.id === `+jsString(other[0])+`)`)
	if got := tb.popups(); len(got) != 1 {
		tb.fatalf("popups = %+v, want only Bob's (own message %s must raise none)", got, own[0])
	}
}

func TestDeniedPermissionShowsToast(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingDenied)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice", true)
	tb.waitFor("the connection", connected)

	ids := send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "Toast title", "body": "in the page", "tag": "t1"})
	// Markup as docs/browser.md describes it: each toast is a status.
	tb.waitFor("the toast element", `document.querySelector('#herald-toasts .herald-toast[role="status"]')?.textContent.includes('Toast title')`)
	var perm string
	tb.eval(`Notification.permission`, &perm)
	if perm != "denied" {
		tb.fatalf("Notification.permission = %q, want denied", perm)
	}
	if !slices.Contains(tb.events(), pageEvent{Type: "toast", ID: ids[0]}) {
		tb.fatalf("no toast event for %s", ids[0])
	}
	if got := tb.popups(); len(got) != 0 {
		tb.fatalf("popups = %+v with permission denied", got)
	}
}

// twoTabs opens two connected tabs of alice, popups permitted, on a fresh
// node.
func twoTabs(t *testing.T) (*node, []*tab) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	tabs := []*tab{
		openTab(t, ctx, "tab 1", a.URL+"/app.html?user=alice", true),
		openTab(t, ctx, "tab 2", a.URL+"/app.html?user=alice", false),
	}
	for _, tb := range tabs {
		tb.waitFor("the connection", connected)
	}
	return n, tabs
}

func TestTwoTabsShowOnePopup(t *testing.T) {
	n, tabs := twoTabs(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, send(t, n.srv.Handler(), map[string]any{
			"to": []string{"alice"}, "title": fmt.Sprintf("m%d", i), "body": "both tabs", "tag": fmt.Sprintf("tag%d", i),
		})[0])
	}
	for _, tb := range tabs {
		tb.waitFor("all notification events", countNotifications+` === 3`)
		if got := notificationIDs(tb.events()); !slices.Equal(got, ids) {
			tb.fatalf("notification events %v, want %v", got, ids)
		}
	}

	shown := func() []string {
		var all []string
		for _, tb := range tabs {
			for _, p := range tb.popups() {
				all = append(all, p.ID)
			}
		}
		slices.Sort(all)
		return all
	}
	deadline := time.Now().Add(waitLong)
	for len(shown()) < len(ids) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	// Give a losing tab time to (wrongly) show its own copy.
	time.Sleep(time.Second)
	want := slices.Clone(ids)
	slices.Sort(want)
	if got := shown(); !slices.Equal(got, want) {
		tabs[0].fatalf("popups across tabs for %v, want exactly one each for %v", got, want)
	}
	// The claims are in IndexedDB, where the service worker looks too.
	var claimed []string
	tabs[0].eval(`new Promise((resolve, reject) => {
		const r = indexedDB.open('herald');
		r.onerror = () => reject(r.error);
		r.onsuccess = () => {
			const q = r.result.transaction('shown').objectStore('shown').getAllKeys();
			q.onsuccess = () => resolve(q.result);
		};
	})`, &claimed)
	for _, id := range ids {
		if !slices.Contains(claimed, id) {
			tabs[0].fatalf("IndexedDB shown records %v lack %s", claimed, id)
		}
	}
}

func TestDemoPage(t *testing.T) {
	n := startNode(t, testConfig(t, func(c *config.Config) {
		c.Demo = true
		c.TalkJSSecret = "talkjs-demo-secret"
		c.CometChatUser, c.CometChatPassword = "cometchat", "demo-password"
	}))
	send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "Welcome", "body": "This was waiting in the inbox.", "data": map[string]string{"senderId": "herald"}})
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 900)); err != nil {
		t.Fatal(err)
	}
	tb := openTab(t, ctx, "demo", n.URL()+"/", true)
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.CSS("#login-form button"))); err != nil {
		tb.fatalf("sign in: %v", err)
	}
	tb.waitFor("the signed-in page", `document.body.dataset.ready === 'true'`)
	tb.waitFor("the open connection", `document.getElementById('state').textContent.startsWith('open (WebSocket)')`)
	tb.waitFor("the inbox", `document.querySelector('#inbox li')?.textContent.includes('Welcome')`)

	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.CSS("#send-form button"))); err != nil {
		tb.fatalf("send: %v", err)
	}
	tb.waitFor("the sent notification in the inbox", `document.querySelectorAll('#inbox li').length === 2 && document.querySelector('#inbox li').textContent.includes('Hello from Herald!')`)
	tb.waitFor("the send result", `document.getElementById('result').textContent === 'Sent to alice.'`)
	if os.Getenv("HERALD_SCREENSHOT") == "1" {
		png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		out := filepath.Join("..", "..", "docs", "demo.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}

	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.CSS(`[data-webhook="talkjs"]`))); err != nil {
		tb.fatalf("webhook: %v", err)
	}
	tb.waitFor("the webhook result", `document.getElementById('result').textContent.startsWith('POST /webhooks/talkjs → ')`)
	var result string
	tb.eval(`document.getElementById('result').textContent`, &result)
	t.Logf("demo webhook: %s", result)
	if strings.Contains(result, `→ 200 {"status":"accepted"}`) {
		// Accepted: the sample message from bob reaches alice's inbox.
		tb.waitFor("the webhook's notification", `[...document.querySelectorAll('#inbox li')].some((li) => li.textContent.includes('sample message from the Herald demo'))`)
	}

	// The page loaded everything it asked for (its icon too) and ran
	// without an error.
	tb.waitFor("the icon", `fetch('/favicon.svg').then((r) => r.ok)`)
	tb.mu.Lock()
	var errs []string
	for _, m := range tb.console {
		if strings.HasPrefix(m, "error:") || strings.HasPrefix(m, "exception:") {
			errs = append(errs, m)
		}
	}
	tb.mu.Unlock()
	if len(errs) != 0 {
		tb.fatalf("console errors on the demo page: %q", errs)
	}

}

// TestTabClosedForTooManySessionsStaysClosed: a newer session over
// HERALD_MAX_SESSIONS_PER_USER closes the oldest tab with 4008; that tab
// must not reconnect, or it would close the newer one in turn.
func TestTabClosedForTooManySessionsStaysClosed(t *testing.T) {
	n := startNode(t, testConfig(t, func(c *config.Config) { c.MaxSessionsPerUser = 1 }))
	a := startApp(t, n)
	ctx := newBrowser(t)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice&transport=ws", true)
	tb.waitFor("the connection", connected)

	dctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, _, err := websocket.Dial(dctx, "ws://"+n.addr+"/v1/ws?token="+mint(t, "alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	tb.waitFor("the tab closed for good", `herald.state === 'closed' && window.errors.some((e) => e.includes('too many sessions'))`)
	if got := n.srv.Hub().LocalSessions("alice"); got != 1 {
		tb.fatalf("alice has %d sessions, want the newer one only", got)
	}
}

// TestReadClosesPopupsInEveryTab: a read through the server API closes
// the popup of that conversation in whichever tab showed it and sends both
// tabs the count; a read from one tab (markRead) closes the other's.
func TestReadClosesPopupsInEveryTab(t *testing.T) {
	n, tabs := twoTabs(t)
	for _, tag := range []string{"c1", "c2"} {
		send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": tag, "body": "b", "tag": tag})
	}
	const shownBoth = `(window.popups || []).length`
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		var a, b int
		tabs[0].eval(shownBoth, &a)
		tabs[1].eval(shownBoth, &b)
		if a+b == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	closed := func(tag string) string {
		return `window.popups.some((p) => p.tag === ` + jsString(tag) + ` && p.closed)`
	}
	anyTab := func(what, expr string) {
		t.Helper()
		for deadline := time.Now().Add(waitLong); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			for _, tb := range tabs {
				var ok bool
				tb.eval(expr, &ok)
				if ok {
					return
				}
			}
		}
		tabs[0].fatalf("no tab shows %s", what)
	}

	// The count is there from the connection on and follows new
	// notifications before anything is read.
	for _, tb := range tabs {
		tb.waitFor("the count of the two", `herald.unread?.total === 2 && herald.unread.tags.c1 === 1 && herald.unread.tags.c2 === 1`)
	}
	req, _ := http.NewRequest(http.MethodPost, n.URL()+"/v1/users/alice/read", strings.NewReader(`{"tag":"c1"}`))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("api read: %v %v", resp, err)
	}
	resp.Body.Close()
	anyTab("the c1 popup closed", closed("c1"))
	for _, tb := range tabs {
		tb.waitFor("the count after the api read", `window.events.some((e) => e.type === 'unread' && e.total === 1) && herald.unread.total === 1`)
	}

	var changed int
	tabs[1].eval(`herald.markRead({ tag: 'c2' }).then((r) => r.changed)`, &changed)
	if changed != 1 {
		tabs[1].fatalf("markRead changed %d, want 1", changed)
	}
	anyTab("the c2 popup closed", closed("c2"))
	for _, tb := range tabs {
		tb.waitFor("the read in every tab", `window.events.some((e) => e.type === 'read' && e.tag === 'c2') && herald.unread.total === 0`)
	}
	send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "c3", "body": "b", "tag": "c3"})
	for _, tb := range tabs {
		tb.waitFor("the count of a new one", `herald.unread.total === 1 && herald.unread.tags.c3 === 1`)
	}
}
