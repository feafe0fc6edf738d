package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/push/pushtest"
	"github.com/heraldhq/herald/pkg/redistest"
)

// TestPushSurvivesSIGKILLDuringAckWait: alice's only session is on node A
// and never acks; A is killed with SIGKILL while the ack timeout runs. The
// pending push is in Redis, so node B sends it when it comes due, once.
func TestPushSurvivesSIGKILLDuringAckWait(t *testing.T) {
	fake := pushtest.NewWebPushServer(t)
	certs := filepath.Join(t.TempDir(), "fake-ca.pem")
	if err := os.WriteFile(certs, fake.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t)
	env := []string{"SSL_CERT_FILE=" + certs, "HERALD_PUSH_ALLOW_PRIVATE=127.0.0.1", "HERALD_ACK_TIMEOUT=3s"}
	a := redisNode(t, rs.URL(), "a", env...)
	b := redisNode(t, rs.URL(), "b", env...)

	endpoint, p256dh, auth := fake.NewSubscription()
	body, _ := json.Marshal(map[string]any{"platform": "webpush", "subscription": map[string]any{
		"endpoint": endpoint, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}})
	req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/devices", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+userToken(t, "alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register device: %d", resp.StatusCode)
	}

	onA, _ := wsTitles(t, a.base, "alice")
	waitUntil(t, "alice online", func() bool { return presence(t, b.base, "alice") == 1 })
	sendVia(t, b.base, procAPIKey, []string{"alice"}, "nobody acks")
	expect(t, onA, "notification:nobody acks")
	a.kill() // SIGKILL during the ack wait

	got := fake.WaitPushes(t, 1, 30*time.Second)
	var frame struct {
		Notification struct{ Title string }
	}
	if err := got[0].JSON(&frame); err != nil || frame.Notification.Title != "nobody acks" {
		t.Fatalf("push payload %s (%v)", got[0].Payload, err)
	}
	time.Sleep(2 * time.Second)
	if n := len(fake.Pushes()); n != 1 {
		t.Fatalf("%d pushes, want exactly 1", n)
	}
	fake.AssertNoFailures(t)
}
