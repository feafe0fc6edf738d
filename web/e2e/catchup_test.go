package e2e_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
)

// TestCatchUpPopups: a page back after missing several notifications of
// two tags gets every one as an event, and popups for them as its catchUp
// option says; live traffic afterwards pops up in every mode.
func TestCatchUpPopups(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	missed := []struct{ title, tag string }{{"a1", "a"}, {"b1", "b"}, {"a2", "a"}, {"b2", "b"}, {"a3", "a"}}
	cases := []struct {
		mode   string // "" for the default
		popups []string
	}{
		{"", []string{"a3", "b2", "live"}},
		{"latest-per-tag", []string{"a3", "b2", "live"}},
		{"all", []string{"a1", "a2", "a3", "b1", "b2", "live"}},
		{"none", []string{"live"}},
	}
	for i, c := range cases {
		user := "catchup" + string(rune('a'+i))
		page := a.URL + "/app.html?user=" + user
		if c.mode != "" {
			page += "&catchup=" + c.mode
		}
		tb := openTab(t, ctx, "mode "+c.mode, page, i == 0)
		tb.waitFor("the connection", connected)
		send(t, n.srv.Handler(), map[string]any{"to": []string{user}, "title": "seen", "body": "b", "tag": "seen"})
		tb.waitFor("the first notification", countNotifications+` === 1`)

		tb.navigate("about:blank")
		for _, m := range missed {
			send(t, n.srv.Handler(), map[string]any{"to": []string{user}, "title": m.title, "body": "missed", "tag": m.tag})
		}
		tb.navigate(page)
		tb.waitFor("the missed notifications", countNotifications+` === 5`)
		tb.waitFor("the connection", connected)
		time.Sleep(100 * time.Millisecond) // live traffic comes any time, not only after the catch-up
		send(t, n.srv.Handler(), map[string]any{"to": []string{user}, "title": "live", "body": "b", "tag": "c"})
		tb.waitFor("the live popup", `window.popups.some((p) => p.title === 'live')`)
		time.Sleep(300 * time.Millisecond) // a popup that should not be there has its chance

		var titles []string
		for _, e := range tb.events() {
			if e.Type == "notification" {
				titles = append(titles, e.Title)
			}
		}
		if want := []string{"a1", "b1", "a2", "b2", "a3", "live"}; !slices.Equal(titles, want) {
			tb.fatalf("catchUp %q: notification events %v, want all of %v", c.mode, titles, want)
		}
		var shown []string
		for _, p := range tb.popups() {
			shown = append(shown, p.Title)
		}
		slices.Sort(shown)
		if !slices.Equal(shown, c.popups) {
			tb.fatalf("catchUp %q: popups %v, want %v", c.mode, shown, c.popups)
		}
	}
}
