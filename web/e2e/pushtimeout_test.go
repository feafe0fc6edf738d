package e2e_test

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
)

// TestSubscribePushTimesOutWithoutPushService: a headless Chromium cannot
// reach a push service, and its pushManager.subscribe never settles;
// subscribePush rejects after its timeout with a message that says why.
func TestSubscribePushTimesOutWithoutPushService(t *testing.T) {
	n := startNode(t, testConfig(t, nil))
	a := startApp(t, n)
	ctx := newBrowser(t)
	setNotificationPermission(t, ctx, a.URL, browser.PermissionSettingGranted)
	tb := openTab(t, ctx, "alice", a.URL+"/app.html?user=alice", true)
	tb.waitFor("the connection", connected)
	var out struct {
		Outcome string `json:"outcome"`
		Message string `json:"message"`
		Code    string `json:"code"`
	}
	// The race only keeps a hang from blocking the test for good.
	tb.eval(`Promise.race([
		herald.subscribePush({ serviceWorker: '/herald-sw.js', timeout: 2000 }).then(
			() => ({ outcome: 'subscribed' }),
			(e) => ({ outcome: 'rejected', message: String(e.message), code: String(e.code) })),
		new Promise((resolve) => setTimeout(() => resolve({ outcome: 'pending' }), 20000)),
	])`, &out)
	if out.Outcome != "rejected" || out.Code != "timeout" || !strings.Contains(out.Message, "push service did not answer within 2000 ms") ||
		!strings.Contains(out.Message, "headless") {
		tb.fatalf("subscribePush: %+v, want a rejection after the timeout saying headless browsers cannot subscribe", out)
	}
}
