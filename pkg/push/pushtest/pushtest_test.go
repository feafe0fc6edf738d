package pushtest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The senders' tests prove the fakes accept the real protocol; these prove
// they refuse what the real services refuse.

func post(t *testing.T, c *http.Client, url string, h map[string]string, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestWebPushFakeRefusesUnsignedAndMalformed(t *testing.T) {
	s := NewWebPushServer(t)
	ep, _, _ := s.NewSubscription()
	if st := post(t, s.Client(), ep, map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}, "x"); st != http.StatusUnauthorized {
		t.Errorf("no VAPID: status %d", st)
	}
	if st := post(t, s.Client(), s.URL()+"/push/nope", nil, "x"); st != http.StatusNotFound {
		t.Errorf("unknown subscription: status %d", st)
	}
	if n := len(s.Failures()); n != 1 || s.Requests() != 2 {
		t.Errorf("failures %q requests %d", s.Failures(), s.Requests())
	}
}

func TestAPNsFakeRefusesBadHeadersAndPayloads(t *testing.T) {
	_, key, _ := NewP8Key()
	s := NewAPNsServer(t, "KID", "TEAM", &key.PublicKey)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "TEAM", "iat": time.Now().Unix()})
	tok.Header["kid"] = "KID"
	bearer, _ := tok.SignedString(key)
	url := s.URL() + "/3/device/" + strings.Repeat("ab", 32)
	h := func(kv ...string) map[string]string {
		m := map[string]string{"authorization": "bearer " + bearer, "apns-topic": "com.example", "apns-push-type": "alert"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	alert := `{"aps":{"alert":"hi"}}`
	for name, tc := range map[string]struct {
		h      map[string]string
		body   string
		status int
	}{
		"ok":                    {h(), alert, 200},
		"no topic":              {h("apns-topic", ""), alert, 400},
		"bad push type":         {h("apns-push-type", "shout"), alert, 400},
		"background at prio 10": {h("apns-push-type", "background", "apns-priority", "10"), `{"aps":{"content-available":1}}`, 400},
		"background with alert": {h("apns-push-type", "background", "apns-priority", "5"), alert, 400},
		"long collapse id":      {h("apns-collapse-id", strings.Repeat("c", 65)), alert, 400},
		"no aps":                {h(), `{"x":1}`, 400},
		"not json":              {h(), `nope`, 400},
		"too large":             {h(), `{"aps":{"alert":"` + strings.Repeat("x", 4100) + `"}}`, 413},
		"no auth":               {h("authorization", ""), alert, 403},
	} {
		if st := post(t, s.Client(), url, tc.h, tc.body); st != tc.status {
			t.Errorf("%s: status %d, want %d", name, st, tc.status)
		}
	}
	if n := len(s.Failures()); n != 9 {
		t.Errorf("%d failures, want 9: %q", n, s.Failures())
	}
	if len(s.Pushes()) != 1 {
		t.Errorf("%d pushes", len(s.Pushes()))
	}
}

func TestFCMFakeRefusesBadMessages(t *testing.T) {
	s := NewFCMServer(t, "p")
	// Issue a token the way the fake expects, bypassing any SDK.
	s.mu.Lock()
	s.tokens["ya29.test"] = accessToken{expires: time.Now().Add(time.Hour)}
	s.mu.Unlock()
	h := map[string]string{"Authorization": "Bearer ya29.test", "Content-Type": "application/json"}
	url := s.Endpoint() + "/projects/p/messages:send"
	for name, tc := range map[string]struct {
		body   string
		status int
	}{
		"ok":                 {`{"message":{"token":"t","data":{"a":"b"}}}`, 200},
		"no target":          {`{"message":{"data":{"a":"b"}}}`, 400},
		"two targets":        {`{"message":{"token":"t","topic":"x","data":{"a":"b"}}}`, 400},
		"empty":              {`{"message":{"token":"t"}}`, 400},
		"reserved key":       {`{"message":{"token":"t","data":{"from":"b"}}}`, 400},
		"non-string data":    {`{"message":{"token":"t","data":{"a":1}}}`, 400},
		"unknown field":      {`{"message":{"token":"t","data":{"a":"b"},"registration_ids":["x"]}}`, 400},
		"bad android ttl":    {`{"message":{"token":"t","data":{"a":"b"},"android":{"ttl":"1h"}}}`, 400},
		"bad apns priority":  {`{"message":{"token":"t","data":{"a":"b"},"apns":{"headers":{"apns-priority":"7"}}}}`, 400},
		"legacy http format": {`{"to":"t","data":{"a":"b"}}`, 400},
	} {
		if st := post(t, s.Client(), url, h, tc.body); st != tc.status {
			t.Errorf("%s: status %d, want %d", name, st, tc.status)
		}
	}
	if st := post(t, s.Client(), s.Endpoint()+"/projects/other/messages:send", h, `{"message":{"token":"t","data":{"a":"b"}}}`); st != http.StatusForbidden {
		t.Errorf("other project: status %d", st)
	}
	if n := len(s.Failures()); n != 10 {
		t.Errorf("%d failures, want 10: %q", n, s.Failures())
	}
}

func FuzzDecrypt(f *testing.F) {
	key, _ := ecdh.P256().GenerateKey(rand.Reader)
	sub := &subscription{key: key, auth: bytes.Repeat([]byte{1}, 16)}
	hdr := append(bytes.Repeat([]byte{0}, 16), 0, 0, 16, 0, 65)
	f.Add(append(hdr, key.PublicKey().Bytes()...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = decrypt(sub, body) // must not panic
	})
}
