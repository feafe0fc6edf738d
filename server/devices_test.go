package server

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// subscriptionKeys returns a valid p256dh and auth pair, base64url.
func subscriptionKeys(t *testing.T) (p256dh, auth string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := make([]byte, 16)
	_, _ = rand.Read(a)
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(a)
}

func webpushDevice(endpoint, p256dh, auth string) map[string]any {
	return map[string]any{"platform": "webpush", "subscription": map[string]any{
		"endpoint": endpoint, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}}
}

func TestDeviceRegistrationChecksKeysAndTokens(t *testing.T) {
	n := startNode(t, nil)
	tok := mintToken(t, "alice")
	p256dh, auth := subscriptionKeys(t)
	offCurve := base64.RawURLEncoding.EncodeToString(append([]byte{4}, bytes.Repeat([]byte{1}, 64)...))
	const ep = "https://fcm.googleapis.com/fcm/send/abc"
	for _, tc := range []struct {
		name   string
		dev    map[string]any
		status int
		field  string
	}{
		{"valid subscription", webpushDevice(ep, p256dh, auth), http.StatusCreated, ""},
		{"p256dh off the curve", webpushDevice(ep+"1", offCurve, auth), http.StatusBadRequest, "p256dh"},
		{"p256dh compressed", webpushDevice(ep+"2", base64.RawURLEncoding.EncodeToString(append([]byte{2}, bytes.Repeat([]byte{1}, 32)...)), auth), http.StatusBadRequest, "p256dh"},
		{"auth of 15 bytes", webpushDevice(ep+"3", p256dh, base64.RawURLEncoding.EncodeToString(make([]byte, 15))), http.StatusBadRequest, "auth"},
		{"endpoint on another port", webpushDevice("https://fcm.googleapis.com:8443/fcm/send/abc", p256dh, auth), http.StatusBadRequest, "endpoint"},
		{"fcm token", map[string]any{"platform": "fcm", "token": "cX9a-b_c:APA91b.Hq"}, http.StatusCreated, ""},
		{"fcm token with a slash", map[string]any{"platform": "fcm", "token": "abc/../def"}, http.StatusBadRequest, "token"},
		{"fcm token with a space", map[string]any{"platform": "fcm", "token": "abc def"}, http.StatusBadRequest, "token"},
		{"fcm token too long", map[string]any{"platform": "fcm", "token": strings.Repeat("a", 1025)}, http.StatusBadRequest, "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := n.do(http.MethodPost, "/v1/devices", tok, tc.dev)
			if status != tc.status || !strings.Contains(string(body), tc.field) {
				t.Fatalf("%d %s, want %d naming %q", status, body, tc.status, tc.field)
			}
		})
	}
}

// TestDeviceRegistrationDoesNotResolveTheEndpoint: the endpoint's name is
// resolved when a push is sent, not at registration, where a failing
// lookup used to turn into a 400.
func TestDeviceRegistrationDoesNotResolveTheEndpoint(t *testing.T) {
	n := startNode(t, nil)
	p256dh, auth := subscriptionKeys(t)
	status, body := n.do(http.MethodPost, "/v1/devices", mintToken(t, "alice"),
		webpushDevice("https://push.does-not-resolve.invalid/sub/1", p256dh, auth))
	if status != http.StatusCreated {
		t.Fatalf("%d %s, want 201", status, body)
	}
}
