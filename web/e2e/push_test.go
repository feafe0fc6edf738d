// The browser side of push: the service worker handling pushes, and the
// client subscribing and registering its device.

package e2e_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"

	pushmsg "github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/webpush"
	"github.com/heraldhq/herald/server/config"
)

// TestServiceWorkerPush delivers pushes through DevTools. Now and then a
// headless Chromium accepts DeliverPushMessage without ever dispatching
// the push event, for every push of that browser; a scenario that sees
// its pushes ignored that way runs again in a fresh browser. A real
// defect of the worker fails every attempt.
func TestServiceWorkerPush(t *testing.T) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if serviceWorkerPush(t) {
			return
		}
		if attempt == attempts {
			t.Fatalf("no push took effect in %d fresh browsers", attempts)
		}
		t.Logf("Chromium ignored the DevTools pushes; again in a fresh browser (attempt %d)", attempt+1)
	}
}

// serviceWorkerPush runs the scenario; false when a push never took effect.
func serviceWorkerPush(t *testing.T) bool {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice&sw=1", true)
	tb.waitFor("the service worker", `navigator.serviceWorker.controller`)
	tb.waitFor("the connection", connected)

	regs := chromedp.Events(tb.ctx, serviceworker.WorkerRegistrationUpdated)
	if _, err := chromedp.Call(tb.ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("ServiceWorker.enable: %v", err)
	}
	var regID serviceworker.RegistrationID
	for ev, err := range regs {
		if err != nil {
			t.Fatalf("service worker registration: %v", err)
		}
		for _, r := range ev.Registrations {
			if !r.IsDeleted && r.ScopeURL == a.URL+"/" {
				regID = r.RegistrationID
			}
		}
		if regID != "" {
			break
		}
	}
	push := func(v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		_, err := chromedp.Call(tb.ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
			Origin: a.URL, RegistrationID: regID, Data: string(b),
		})
		if err != nil {
			t.Fatalf("deliver push: %v", err)
		}
	}
	notification := func(id, title, tag, url string) map[string]any {
		return map[string]any{"type": "notification", "notification": map[string]any{
			"id": id, "title": title, "body": "body of " + title, "tag": tag, "url": url,
		}}
	}
	const shownBySW = `navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((ns) => ns.map((n) => ({ title: n.title, body: n.body, tag: n.tag, id: n.data && n.data.id })))`
	has := func(id string) string {
		return shownBySW + `.then((ns) => ns.some((n) => n.id === ` + jsString(id) + `))`
	}

	// deliver pushes v until cond holds. Chrome's DevTools delivery now
	// and then drops a push that reaches a worker while it starts; a real
	// push service redelivers, and so does this (the worker's dedupe by id
	// keeps a redelivery from showing twice).
	deliver := func(what string, v any, cond string) bool {
		t.Helper()
		for attempt := 0; attempt < 2; attempt++ {
			push(v)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool]("(async () => !!(await ("+cond+")))()", chromedp.EvalAwaitPromise))
				if err == nil && ok {
					return true
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		t.Logf("%s: no effect after two deliveries", what)
		return false
	}

	// A push shows a notification with the payload's fields.
	if !deliver("the pushed notification", notification("push-1", "Pushed", "push-tag", "/app.html?from=push"), has("push-1")) {
		return false
	}
	var list []popup
	tb.eval(shownBySW, &list)
	if !slices.Contains(list, popup{Title: "Pushed", Body: "body of Pushed", Tag: "push-tag", ID: "push-1"}) {
		tb.fatalf("service worker notifications %+v lack push-1 as sent", list)
	}

	// The same id twice shows once; so does an id a tab already showed.
	push(notification("push-2", "Twice", "", "/inbox?from=push"))
	push(notification("push-2", "Twice", "", "/inbox?from=push"))
	live := send(t, n.srv.Handler(), map[string]any{"to": []string{"alice"}, "title": "Live first", "body": "b"})[0]
	tb.waitFor("the tab's popup", `window.popups.some((p) => p.id === `+jsString(live)+`)`)
	push(notification(live, "Live first", "", ""))
	if !deliver("the marker", notification("push-3", "Marker", "", ""), has("push-3")) {
		return false
	}
	tb.eval(shownBySW, &list)
	count := map[string]int{}
	for _, p := range list {
		count[p.ID]++
	}
	if count["push-2"] != 1 || count[live] != 0 {
		tb.fatalf("service worker notifications %+v: want push-2 once and none for %s, which the tab showed", list, live)
	}

	// A retraction closes the notification with that tag.
	if !deliver("the retraction", map[string]any{"type": "retract", "id": "push-1", "tag": "push-tag"}, `(`+has("push-1")+`).then((x) => !x)`) {
		return false
	}

	// A declarative push message, as the server's encoder builds it for a
	// device registered with its scope. A browser that hands it to the
	// worker (one that does not read declarative messages itself) gets it
	// shown by the worker from the same JSON, the click going to navigate.
	declared := func(id string) []byte {
		b, err := webpush.Payload(&pushmsg.Message{
			ID: id, User: "alice", Title: "Declared", Body: "body of Declared", Tag: "decl-" + id,
			URL: "/inbox?from=" + id, Created: time.Now(),
		}, &pushmsg.Device{Scope: a.URL + "/"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badged := func(id string, badge int) []byte {
		b, err := pushmsg.Frame(&pushmsg.Message{ID: id, User: "alice", Title: "Badged", Body: "b", Badge: &badge, Created: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cleared := func(badge int, ids ...string) []byte {
		b, err := webpush.Payload(&pushmsg.Message{ID: "read:1", User: "alice", Clear: ids, Badge: &badge}, &pushmsg.Device{Scope: a.URL + "/"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	declaredBadge := func(id string, badge int) []byte {
		b, err := webpush.Payload(&pushmsg.Message{ID: id, User: "alice", Title: "Declared", Tag: "decl-" + id, Badge: &badge, Created: time.Now()},
			&pushmsg.Device{Scope: a.URL + "/"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// One evaluation in the worker: leaving it closes the worker's target.
	// A click focuses the open tab and hands it the URL. DevTools cannot
	// click a system notification, so the worker's click handler is called
	// with real notifications from its own registration. The app badge,
	// which no page can read, is watched in the worker: each push's total
	// becomes the badge, and a clearing push closes what it names.
	got := swEval(t, tb, `onPush({ json: () => (`+string(declared("push-5"))+`), text: () => '' })
		.then(() => self.registration.getNotifications())
		.then(async (ns) => {
			await onNotificationClick(ns.find((n) => n.data.id === 'push-5'));
			await onNotificationClick(ns.find((n) => n.data.id === 'push-2'));
			const badges = [];
			Object.defineProperty(self.navigator, 'setAppBadge', { configurable: true, value: async (n) => { badges.push(n); } });
			Object.defineProperty(self.navigator, 'clearAppBadge', { configurable: true, value: async () => { badges.push(0); } });
			await onPush({ json: () => (`+string(badged("push-6", 2))+`), text: () => '' });
			await onPush({ json: () => (`+string(declaredBadge("push-7", 3))+`), text: () => '' });
			const before = (await self.registration.getNotifications()).map((n) => n.data.id);
			await onPush({ json: () => (`+string(cleared(0, "push-6", "push-7"))+`), text: () => '' });
			const after = (await self.registration.getNotifications()).map((n) => n.data.id);
			return { badges, before, after };
		})`)
	var spied struct {
		Badges        []int
		Before, After []string
	}
	if err := json.Unmarshal([]byte(got), &spied); err != nil {
		t.Fatalf("worker result %s: %v", got, err)
	}
	if fmt.Sprint(spied.Badges) != "[2 3 0]" || !slices.Contains(spied.Before, "push-6") || !slices.Contains(spied.Before, "push-7") ||
		slices.Contains(spied.After, "push-6") || slices.Contains(spied.After, "push-7") || !slices.Contains(spied.After, "push-5") {
		tb.fatalf("in the worker: badges %v, shown %v before the clearing push and %v after; want badges [2 3 0] and push-6, push-7 closed, push-5 kept",
			spied.Badges, spied.Before, spied.After)
	}
	tb.eval(shownBySW, &list)
	if !slices.Contains(list, popup{Title: "Declared", Body: "body of Declared", Tag: "decl-push-5", ID: "push-5"}) {
		tb.fatalf("service worker notifications %+v lack push-5 as declared", list)
	}
	tb.waitFor("the declarative click", `window.events.some((e) => e.type === 'click' && e.url === `+jsString(a.URL+"/inbox?from=push-5")+`)`)
	tb.waitFor("the click event", `window.events.some((e) => e.type === 'click' && e.url === `+jsString(a.URL+"/inbox?from=push")+`)`)

	// Pushed for real it shows too, by the browser itself where it reads
	// declarative messages (the worker's push handler then leaves it be),
	// else by the worker.
	if !deliver("the declarative message", json.RawMessage(declared("push-4")), has("push-4")) {
		return false
	}
	tb.eval(shownBySW, &list)
	if !slices.Contains(list, popup{Title: "Declared", Body: "body of Declared", Tag: "decl-push-4", ID: "push-4"}) {
		tb.fatalf("notifications %+v lack push-4 as declared", list)
	}

	// A clearing push, pushed for real, closes what it names and no more.
	if !deliver("the clearing push", json.RawMessage(cleared(1, "push-4", "push-3")), `(`+has("push-4")+`).then(async (x) => !x && !(await (`+has("push-3")+`)))`) {
		return false
	}
	tb.eval(shownBySW, &list)
	if !slices.ContainsFunc(list, func(p popup) bool { return p.ID == "push-2" }) {
		tb.fatalf("notifications %+v: the clearing push closed push-2 too", list)
	}
	return true
}

// fakePushManager replaces the browser's push service, which a headless
// browser cannot reach: subscribe returns a subscription to endpoint with
// keys (a pushKeys JSON object) and records its options.
func fakePushManager(endpoint string, keys pushKeys) string {
	k, _ := json.Marshal(keys)
	return `(() => {
  let current = null;
  PushManager.prototype.getSubscription = async function () { return current; };
  PushManager.prototype.subscribe = async function (opts) {
    window.subscribeOptions = { userVisibleOnly: opts.userVisibleOnly, key: Array.from(new Uint8Array(opts.applicationServerKey)) };
    current = {
      endpoint: ` + jsString(endpoint) + `,
      options: opts,
      toJSON() { return { endpoint: this.endpoint, expirationTime: null, keys: ` + string(k) + ` }; },
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
  return true;
})()`
}

// pushKeys are the keys of a Web Push subscription, base64url.
type pushKeys struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// newPushKeys makes the keys a browser would: a P-256 public key as an
// uncompressed point and a 16-byte auth secret.
func newPushKeys(t *testing.T) pushKeys {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return pushKeys{
		P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(auth),
	}
}

// getJSON GETs path from the node, with token as bearer when it is set,
// and decodes the 200 answer into out.
func getJSON(t *testing.T, n *node, path, token string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: decode %s: %v", path, body, err)
	}
}

type deviceInfo struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	Host     string `json:"host"`
	Scope    string `json:"scope"`
}

// listDevices is GET /v1/devices with token.
func listDevices(t *testing.T, n *node, token string) []deviceInfo {
	t.Helper()
	var resp struct {
		Devices []deviceInfo `json:"devices"`
	}
	getJSON(t, n, "/v1/devices", token, &resp)
	return resp.Devices
}

// TestSubscribePushRegistersDevice checks the client's half of Web Push
// against the server's endpoints, with only the browser's push service
// faked: the subscription options, the device registration, the
// re-registration by the service worker when the subscription changes, and
// the removal.
func TestSubscribePushRegistersDevice(t *testing.T) {
	const pushHost = "push.example.test"
	n := startNode(t, testConfig(t, func(c *config.Config) { c.PushAllowPrivate = []string{pushHost} }))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice", true)
	tb.waitFor("the connection", connected)
	keys1, keys2 := newPushKeys(t), newPushKeys(t)
	sub1, sub2 := "https://"+pushHost+"/sub-1", "https://"+pushHost+"/sub-2"
	tb.eval(fakePushManager(sub1, keys1), nil)
	token := mint(t, "alice")

	var id1 string
	tb.eval(`herald.subscribePush({ serviceWorker: '/herald-sw.js' }).then((r) => r.id)`, &id1)
	if !strings.HasPrefix(id1, "dev_") {
		tb.fatalf("subscribePush id = %q, want a dev_ id", id1)
	}
	var vapid struct {
		PublicKey string `json:"publicKey"`
	}
	getJSON(t, n, "/v1/push/vapid-public-key", "", &vapid)
	serverKey, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(vapid.PublicKey, "="))
	if err != nil || len(serverKey) != 65 {
		t.Fatalf("server VAPID key %q: %v", vapid.PublicKey, err)
	}
	var opts struct {
		UserVisibleOnly bool  `json:"userVisibleOnly"`
		Key             []int `json:"key"`
	}
	tb.eval(`window.subscribeOptions`, &opts)
	key := make([]byte, len(opts.Key))
	for i, b := range opts.Key {
		key[i] = byte(b)
	}
	if !opts.UserVisibleOnly || !bytes.Equal(key, serverKey) {
		tb.fatalf("subscribe options %+v: want userVisibleOnly and the server's VAPID key %v", opts, serverKey)
	}
	if calls := a.deviceCalls(); !slices.Equal(calls, []string{"POST /v1/devices 201"}) {
		tb.fatalf("device calls %q, want one POST answered 201", calls)
	}
	// The scope the client reports makes the server send declarative
	// push messages to this device.
	if devs := listDevices(t, n, token); len(devs) != 1 || devs[0].ID != id1 || devs[0].Platform != "webpush" || devs[0].Host != pushHost || devs[0].Scope != a.URL+"/" {
		tb.fatalf("devices %+v, want only %s (webpush at %s, scope %s/)", devs, id1, pushHost, a.URL)
	}

	// The push service replaced the subscription: the worker registers the
	// new one with the token it was handed, and removes the old device.
	tb.waitFor("the service worker", `navigator.serviceWorker.controller`)
	k2, _ := json.Marshal(keys2)
	swEval(t, tb, `onSubscriptionChange(null, { toJSON: () => ({ endpoint: `+jsString(sub2)+`, keys: `+string(k2)+` }) }).then(() => true)`)
	var devs []deviceInfo
	for deadline := time.Now().Add(waitLong); ; {
		devs = listDevices(t, n, token)
		// The proxy records the DELETE as it answers, just after the server
		// removed the device.
		if len(devs) == 1 && devs[0].ID != id1 && len(a.deviceCalls()) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(devs) != 1 || devs[0].ID == id1 || !strings.HasPrefix(devs[0].ID, "dev_") || devs[0].Platform != "webpush" || devs[0].Host != pushHost || devs[0].Scope != a.URL+"/" {
		tb.fatalf("devices after the subscription changed: %+v, want only a new webpush device with the scope", devs)
	}
	id2 := devs[0].ID
	if calls := a.deviceCalls(); !slices.Equal(calls, []string{"POST /v1/devices 201", "POST /v1/devices 201", "DELETE /v1/devices/" + id1 + " 204"}) {
		tb.fatalf("device calls after the subscription changed: %q", calls)
	}

	tb.eval(`herald.unsubscribePush().then(() => true)`, nil)
	if devs := listDevices(t, n, token); len(devs) != 0 {
		tb.fatalf("devices after unsubscribePush: %+v, want none", devs)
	}
	if calls := a.deviceCalls(); len(calls) != 4 || calls[3] != "DELETE /v1/devices/"+id2+" 204" {
		tb.fatalf("device calls after unsubscribePush: %q", calls)
	}
}

// swEval evaluates expr in the service worker of the tab's origin.
// swEval evaluates expr in the service worker and returns its result as
// JSON.
func swEval(t *testing.T, tb *tab, expr string) string {
	t.Helper()
	targets, err := chromedp.Targets(tb.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range targets {
		if info.Type != "service_worker" || !strings.HasSuffix(info.URL, "/herald-sw.js") {
			continue
		}
		swCtx, cancel := chromedp.NewContext(tb.ctx, chromedp.WithTargetID(info.TargetID))
		defer cancel()
		out, err := chromedp.Run(swCtx, chromedp.Evaluate[string]("Promise.resolve("+expr+").then((v) => JSON.stringify(v ?? null))", chromedp.EvalAwaitPromise))
		if err != nil {
			tb.fatalf("in the service worker: %s: %v", expr, err)
		}
		return out
	}
	tb.fatalf("no service worker target among %d targets", len(targets))
	return ""
}
