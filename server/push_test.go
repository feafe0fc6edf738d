package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/pkg/push/pushtest"
	"github.com/heraldhq/herald/pkg/redistest"
)

// pushFakes are the three push services, faked on loopback, checking the
// real protocols (see pkg/push/pushtest).
type pushFakes struct {
	web  *pushtest.WebPushServer
	fcm  *pushtest.FCMServer
	apns *pushtest.APNsServer
}

const apnsToken = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

func newPushFakes(t *testing.T) (*pushFakes, func(*configT)) {
	t.Helper()
	f := &pushFakes{web: pushtest.NewWebPushServer(t), fcm: pushtest.NewFCMServer(t, "herald-test")}
	p8, key, err := pushtest.NewP8Key()
	if err != nil {
		t.Fatal(err)
	}
	f.apns = pushtest.NewAPNsServer(t, "KEY1234567", "TEAM123456", &key.PublicKey)
	pool := x509.NewCertPool()
	for _, pem := range [][]byte{f.web.CertPEM(), f.fcm.CertPEM(), f.apns.CertPEM()} {
		pool.AppendCertsFromPEM(pem)
	}
	pushRootCAs = pool
	t.Cleanup(func() { pushRootCAs = nil })
	dir := t.TempDir()
	sa, p8path := filepath.Join(dir, "sa.json"), filepath.Join(dir, "key.p8")
	if err := os.WriteFile(sa, f.fcm.NewServiceAccount(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p8path, p8, 0o600); err != nil {
		t.Fatal(err)
	}
	return f, func(c *configT) {
		c.PushAllowPrivate = []string{"127.0.0.1"}
		c.AckTimeout = 2 * time.Second
		c.FCMCredentials, c.FCMEndpoint = sa, f.fcm.Endpoint()
		c.APNsKeyFile, c.APNsKeyID, c.APNsTeamID, c.APNsTopic = p8path, "KEY1234567", "TEAM123456", "com.example.herald"
		c.APNsHost, c.APNsEnv = f.apns.URL(), "sandbox"
	}
}

// registerDevices registers one device of each platform for user and
// returns the web push endpoint.
func (n *testNode) registerDevices(f *pushFakes, user string) string {
	n.t.Helper()
	status, body := n.do(http.MethodGet, "/v1/push/vapid-public-key", "", nil)
	var vk struct{ PublicKey string }
	if status != 200 || json.Unmarshal(body, &vk) != nil || vk.PublicKey == "" {
		n.t.Fatalf("vapid key: %d %s", status, body)
	}
	f.web.RequireVAPIDKey(vk.PublicKey)
	endpoint, p256dh, auth := f.web.NewSubscription()
	tok := mintToken(n.t, user)
	for _, dev := range []map[string]any{
		{"platform": "webpush", "subscription": map[string]any{"endpoint": endpoint, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}, "label": "laptop"},
		{"platform": "fcm", "token": "fcm-token-" + user},
		{"platform": "apns", "token": apnsToken},
	} {
		if status, body := n.do(http.MethodPost, "/v1/devices", tok, dev); status != http.StatusCreated {
			n.t.Fatalf("register %v: %d %s", dev["platform"], status, body)
		}
	}
	return endpoint
}

// waitOnline waits until the cluster counts a session of user: a session
// is counted once attached, a moment after its handshake.
func (n *testNode) waitOnline(user string) {
	n.t.Helper()
	waitFor(n.t, user+" online", func() bool {
		_, body := n.do(http.MethodGet, "/v1/users/"+user+"/presence", testAPIKey, nil)
		return strings.Contains(string(body), `"online":true`)
	})
}

func (f *pushFakes) counts() [3]int {
	return [3]int{len(f.web.Pushes()), len(f.fcm.Sends()), len(f.apns.Pushes())}
}

func (f *pushFakes) check(t *testing.T) {
	t.Helper()
	f.web.AssertNoFailures(t)
	f.fcm.AssertNoFailures(t)
	f.apns.AssertNoFailures(t)
}

func TestOfflineUserGetsOnePushPerDevice(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	n.registerDevices(f, "alice")
	n.mustSend([]string{"alice"}, "Offline hello")
	wp := f.web.WaitPushes(t, 1, 15*time.Second)
	fs := f.fcm.WaitSends(t, 1, 15*time.Second)
	ap := f.apns.WaitPushes(t, 1, 15*time.Second)
	var frame struct {
		Type         string `json:"type"`
		Notification struct{ Title, User string }
	}
	if err := wp[0].JSON(&frame); err != nil || frame.Type != "notification" || frame.Notification.Title != "Offline hello" {
		t.Fatalf("web push payload %s (%v)", wp[0].Payload, err)
	}
	if fs[0].Message.Token != "fcm-token-alice" || fs[0].Message.Notification == nil || fs[0].Message.Notification.Title != "Offline hello" {
		t.Fatalf("fcm message %s", fs[0].Raw)
	}
	if ap[0].Token != apnsToken || ap[0].Topic != "com.example.herald" || !strings.Contains(string(ap[0].Payload), "Offline hello") {
		t.Fatalf("apns push %+v %s", ap[0], ap[0].Payload)
	}
	time.Sleep(500 * time.Millisecond)
	if c := f.counts(); c != [3]int{1, 1, 1} {
		t.Fatalf("pushes per platform = %v, want exactly one each", c)
	}
	f.check(t)
}

func TestOnlineUserWhoAcksGetsNoPush(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	n.registerDevices(f, "alice")
	ws := n.mustDialWS("alice", "")
	n.waitOnline("alice")
	n.mustSend([]string{"alice"}, "Live hello")
	fr := ws.mustNext()
	ack, _ := json.Marshal(map[string]string{"type": "ack", "id": fr.Notification.ID})
	if err := ws.c.Write(context.Background(), websocket.MessageText, ack); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2*n.cfg.AckTimeout + time.Second)
	if c := f.counts(); c != [3]int{} {
		t.Fatalf("pushes after an ack = %v, want none", c)
	}
}

func TestOnlineUserWhoNeverAcksIsPushedAfterTheTimeout(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	n.registerDevices(f, "alice")
	ws := n.mustDialWS("alice", "")
	n.waitOnline("alice")
	n.mustSend([]string{"alice"}, "Unacked")
	ws.mustNext()
	if c := f.counts(); c != [3]int{} {
		t.Fatalf("pushed while the ack timeout runs: %v", c)
	}
	f.web.WaitPushes(t, 1, 15*time.Second)
	f.fcm.WaitSends(t, 1, 15*time.Second)
	f.apns.WaitPushes(t, 1, 15*time.Second)
	f.check(t)
}

func TestGoneDevicesAreRemovedAndRetryAfterIsHonoured(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	endpoint := n.registerDevices(f, "alice")
	f.web.Answer(endpoint, 1, http.StatusTooManyRequests, "1")
	f.apns.Unregister(apnsToken)
	f.fcm.Unregister("fcm-token-alice")
	n.mustSend([]string{"alice"}, "First")
	f.web.WaitPushes(t, 1, 15*time.Second)
	if r := f.web.Requests(); r != 2 {
		t.Fatalf("web push requests = %d, want 2 (429, then the retry)", r)
	}
	waitFor(t, "gone devices removed", func() bool {
		_, body := n.do(http.MethodGet, "/v1/devices", mintToken(t, "alice"), nil)
		return strings.Count(string(body), `"id"`) == 1
	})
	_, body := n.do(http.MethodGet, "/v1/devices", mintToken(t, "alice"), nil)
	if !strings.Contains(string(body), `"platform":"webpush"`) || strings.Contains(string(body), "p256dh") || strings.Contains(string(body), "fcm-token") {
		t.Fatalf("devices = %s: want the web push device only, without keys or tokens", body)
	}
	time.Sleep(1500 * time.Millisecond)
	if len(f.web.Pushes()) != 1 {
		t.Fatalf("web pushes = %d, want exactly 1", len(f.web.Pushes()))
	}
}

func TestPrivateEndpointIsRefusedWithoutAllowance(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, func(c *configT) { push(c); c.PushAllowPrivate = nil })
	endpoint, p256dh, auth := f.web.NewSubscription()
	for _, ep := range []string{endpoint, "http://example.com/push", "https://10.0.0.1/push", "https://[::1]/x"} {
		status, body := n.do(http.MethodPost, "/v1/devices", mintToken(t, "alice"), map[string]any{
			"platform": "webpush", "subscription": map[string]any{"endpoint": ep, "keys": map[string]string{"p256dh": p256dh, "auth": auth}},
		})
		if status != http.StatusBadRequest {
			t.Fatalf("%s: %d %s, want 400", ep, status, body)
		}
	}
}

func TestLogoutRemovesThatSessionsDevices(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	n.registerDevices(f, "alice") // session s-alice
	status, body := n.do(http.MethodDelete, "/v1/devices", mintToken(t, "alice"), nil)
	if status != 200 || !strings.Contains(string(body), `"removed":3`) {
		t.Fatalf("logout: %d %s", status, body)
	}
	n.mustSend([]string{"alice"}, "After logout")
	time.Sleep(time.Second)
	if c := f.counts(); c != [3]int{} {
		t.Fatalf("pushed to logged-out devices: %v", c)
	}
}

// TestPushSurvivesNodeKilledDuringAckWait: the node holding the session
// dies while the ack timeout runs; another node sends the push, once.
func TestPushSurvivesNodeKilledDuringAckWait(t *testing.T) {
	f, push := newPushFakes(t)
	rs := redistest.Start(t)
	cfg := func(c *configT) { push(c); c.RedisURL = rs.URL(); c.AckTimeout = 3 * time.Second }
	a := startNode(t, cfg)
	b := startNode(t, cfg)
	a.registerDevices(f, "alice")
	ws := a.mustDialWS("alice", "")
	b.waitOnline("alice")
	b.mustSend([]string{"alice"}, "Who acks?")
	ws.mustNext()
	a.stop() // a dies before the timeout, its session never acked
	f.web.WaitPushes(t, 1, 20*time.Second)
	f.fcm.WaitSends(t, 1, 20*time.Second)
	f.apns.WaitPushes(t, 1, 20*time.Second)
	time.Sleep(time.Second)
	if c := f.counts(); c != [3]int{1, 1, 1} {
		t.Fatalf("pushes = %v, want exactly one per device", c)
	}
	f.check(t)
}

// TestWebPushDeviceWithAScopeGetsDeclarativePush: a subscription
// registered with its service worker scope (as herald.js registers it)
// is pushed a declarative message, its click target resolved against the
// scope; a scope that is not an absolute http(s) URL is refused.
func TestWebPushDeviceWithAScopeGetsDeclarativePush(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	tok := mintToken(t, "alice")
	endpoint, p256dh, auth := f.web.NewSubscription()
	sub := map[string]any{"endpoint": endpoint, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}
	for _, bad := range []string{"/relative/", "javascript:alert(1)", "ftp://app.example/", "https://user:pw@app.example/", "https://app.example/" + strings.Repeat("x", 2048)} {
		status, body := n.do(http.MethodPost, "/v1/devices", tok, map[string]any{"platform": "webpush", "subscription": sub, "scope": bad})
		if status != http.StatusBadRequest || !strings.Contains(string(body), "scope") {
			t.Fatalf("scope %.40q: %d %s, want 400 naming scope", bad, status, body)
		}
	}
	status, body := n.do(http.MethodPost, "/v1/devices", tok, map[string]any{"platform": "webpush", "subscription": sub, "scope": "https://app.example/"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %s", status, body)
	}
	status, body = n.send(map[string]any{"to": []string{"alice"}, "title": "Declared", "body": "hi", "url": "/chat/c1", "tag": "c1"})
	var sent sendResponse
	if status != http.StatusAccepted || json.Unmarshal(body, &sent) != nil || len(sent.Notifications) != 1 {
		t.Fatalf("send: %d %s", status, body)
	}
	wp := f.web.WaitPushes(t, 1, 15*time.Second)
	var msg struct {
		WebPush      int  `json:"web_push"`
		Mutable      bool `json:"mutable"`
		Notification struct {
			Title, Body, Navigate, Tag string
			Data                       struct{ ID, URL string }
		}
	}
	if err := wp[0].JSON(&msg); err != nil {
		t.Fatal(err)
	}
	nt := msg.Notification
	if msg.WebPush != 8030 || !msg.Mutable || nt.Title != "Declared" || nt.Body != "hi" || nt.Navigate != "https://app.example/chat/c1" ||
		nt.Tag != "c1" || nt.Data.ID != sent.Notifications[0].ID || nt.Data.URL != "/chat/c1" {
		t.Fatalf("payload %s", wp[0].Payload)
	}
	f.check(t)
}

// TestReadClearsTheDevicesThatWereShown: an offline user's notifications
// are pushed to their three devices with the unread total as badge; a
// read through the server API sends each of those devices a clearing push
// (Web Push read frame, APNs badge-only push under the conversation's
// collapse id, FCM data) with the new total, and nothing to a device
// registered after the pushes.
func TestReadClearsTheDevicesThatWereShown(t *testing.T) { testReadClearsDevices(t, embedded) }

func testReadClearsDevices(t *testing.T, backend nodeBackend) {
	f, push := newPushFakes(t)
	n := startNodeOn(t, backend, push)
	endpoint := n.registerDevices(f, "alice")
	var ids []string
	for i := 1; i <= 2; i++ {
		status, body := n.send(map[string]any{"to": []string{"alice"}, "title": fmt.Sprint("m", i), "tag": "c1"})
		var sent sendResponse
		if status != http.StatusAccepted || json.Unmarshal(body, &sent) != nil {
			t.Fatalf("send: %d %s", status, body)
		}
		ids = append(ids, sent.Notifications[0].ID)
		f.web.WaitPushes(t, i, 15*time.Second)
		f.fcm.WaitSends(t, i, 15*time.Second)
		f.apns.WaitPushes(t, i, 15*time.Second)
	}
	var frame struct {
		Type  string
		IDs   []string
		Tag   string
		Badge *int
	}
	if err := f.web.Pushes()[1].JSON(&frame); err != nil || frame.Type != "notification" || frame.Badge == nil || *frame.Badge != 2 {
		t.Fatalf("second web push %s, want badge 2", f.web.Pushes()[1].Payload)
	}
	if !strings.Contains(string(f.apns.Pushes()[1].Payload), `"badge":2`) || f.fcm.Sends()[1].Message.Data["badge"] != "2" {
		t.Fatalf("second apns %s / fcm %s, want badge 2", f.apns.Pushes()[1].Payload, f.fcm.Sends()[1].Raw)
	}
	tok := mintToken(t, "alice")
	waitFor(t, "deliveries recorded", func() bool {
		_, body := n.do(http.MethodGet, "/v1/notifications", tok, nil)
		return strings.Count(string(body), `"delivered_at"`) == 2
	})
	late, p256dh, auth := f.web.NewSubscription()
	if status, body := n.do(http.MethodPost, "/v1/devices", tok, map[string]any{"platform": "webpush",
		"subscription": map[string]any{"endpoint": late, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}}); status != http.StatusCreated {
		t.Fatalf("register late device: %d %s", status, body)
	}

	if status, body := n.do(http.MethodPost, "/v1/users/alice/read", testAPIKey, map[string]any{"tag": "c1"}); status != http.StatusOK {
		t.Fatalf("read: %d %s", status, body)
	}
	wp := f.web.WaitPushes(t, 3, 15*time.Second)[2]
	fs := f.fcm.WaitSends(t, 3, 15*time.Second)[2]
	ap := f.apns.WaitPushes(t, 3, 15*time.Second)[2]
	if err := wp.JSON(&frame); err != nil || wp.Endpoint != endpoint || frame.Type != "read" || frame.Tag != "c1" ||
		fmt.Sprint(frame.IDs) != fmt.Sprint(ids) || frame.Badge == nil || *frame.Badge != 0 {
		t.Errorf("web clearing push to %s: %s", wp.Endpoint, wp.Payload)
	}
	if fs.Message.Notification != nil || fs.Message.Data["badge"] != "0" || !strings.Contains(fs.Message.Data["herald"], `"type":"read"`) {
		t.Errorf("fcm clearing push %s", fs.Raw)
	}
	if ap.PushType != "alert" || ap.CollapseID != f.apns.Pushes()[0].CollapseID || !strings.Contains(string(ap.Payload), `"badge":0`) ||
		strings.Contains(string(ap.Payload), `"alert"`) {
		t.Errorf("apns clearing push %+v %s", ap, ap.Payload)
	}
	// A second read changes nothing and pushes nothing.
	if status, body := n.do(http.MethodPost, "/v1/users/alice/read", testAPIKey, map[string]any{"ids": ids}); status != http.StatusOK {
		t.Fatalf("read again: %d %s", status, body)
	}
	time.Sleep(500 * time.Millisecond)
	if c := f.counts(); c != [3]int{3, 3, 3} {
		t.Errorf("pushes per platform %v, want 3 each: the late device and repeated reads get nothing", c)
	}
	for _, p := range f.web.Pushes() {
		if p.Endpoint == late {
			t.Errorf("the device registered after the pushes got %s", p.Payload)
		}
	}
	f.check(t)
}

// TestPushRecordedAfterTheReadStillClearsItsDevice: a push whose record
// lands after the notification was read (the read's own clearing push
// could not know of it) clears its device at once, with the new badge.
func TestPushRecordedAfterTheReadStillClearsItsDevice(t *testing.T) {
	f, push := newPushFakes(t)
	n := startNode(t, push)
	sent := n.mustSend([]string{"alice"}, "read before its push was recorded")
	id := sent.Notifications[0].ID
	n.mustSend([]string{"alice"}, "still unread")
	if status, body := n.do(http.MethodPost, "/v1/users/alice/read", testAPIKey, map[string]any{"ids": []string{id}}); status != http.StatusOK {
		t.Fatalf("read: %d %s", status, body)
	}
	// The device registers now, so nothing was pushed to it; its push is
	// recorded as the dispatcher would after the read.
	status, body := n.do(http.MethodGet, "/v1/push/vapid-public-key", "", nil)
	var vk struct{ PublicKey string }
	if status != 200 || json.Unmarshal(body, &vk) != nil {
		t.Fatalf("vapid key: %d %s", status, body)
	}
	f.web.RequireVAPIDKey(vk.PublicKey)
	endpoint, p256dh, auth := f.web.NewSubscription()
	status, body = n.do(http.MethodPost, "/v1/devices", mintToken(t, "alice"), map[string]any{"platform": "webpush",
		"subscription": map[string]any{"endpoint": endpoint, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}})
	var dev struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(body, &dev) != nil {
		t.Fatalf("register: %d %s", status, body)
	}
	n.srv.recordDelivered(context.Background(), "alice", id, []string{dev.ID})
	wp := f.web.WaitPushes(t, 1, 15*time.Second)[0]
	var frame struct {
		Type  string
		IDs   []string
		Badge *int
	}
	if err := wp.JSON(&frame); err != nil || frame.Type != "read" || fmt.Sprint(frame.IDs) != "["+id+"]" || frame.Badge == nil || *frame.Badge != 1 {
		t.Fatalf("clearing push %s, want a read of %s with badge 1", wp.Payload, id)
	}
	f.check(t)
}
