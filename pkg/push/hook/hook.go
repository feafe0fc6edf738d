// Package hook is the "custom provider": instead of pushing to a device it
// POSTs each (device, message) pair as JSON to a URL the operator runs,
// signed the Standard Webhooks way, so the operator can deliver through a
// channel Herald does not speak.
//
// The request:
//
//	POST <URL>
//	webhook-id: <message id>_<device id>
//	webhook-timestamp: <unix seconds>
//	webhook-signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>
//
//	{"type":"push","device":{"id":…,"platform":…,"user":…},"message":{…}}
//
// A 2xx answer is success, 404/410 removes the device, 408/429/5xx is
// retried (honouring Retry-After), any other status fails the message.
package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/safedial"
)

// SecretPrefix starts every Standard Webhooks secret.
const SecretPrefix = "whsec_"

// Options configure a Sender.
type Options struct {
	URL string
	// Secret is "whsec_" followed by the base64 key. Empty: requests go
	// unsigned (not recommended).
	Secret string
	// Client sends the requests. nil: safedial.Client(nil), which refuses
	// private and loopback URLs.
	Client *http.Client
	// Now is the clock for webhook-timestamp; nil is time.Now.
	Now func() time.Time
}

// Sender is the webhook push.Sender.
type Sender struct {
	opts Options
	key  []byte
}

// New checks o and returns a Sender.
func New(o Options) (*Sender, error) {
	if o.URL == "" {
		return nil, errors.New("hook: URL is required")
	}
	var key []byte
	if o.Secret != "" {
		var err error
		if key, err = DecodeSecret(o.Secret); err != nil {
			return nil, err
		}
	}
	if o.Client == nil {
		o.Client = safedial.Client(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Sender{opts: o, key: key}, nil
}

// DecodeSecret turns "whsec_<base64>" into the HMAC key.
func DecodeSecret(secret string) ([]byte, error) {
	s, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("hook: secret must start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("hook: secret after %q must be base64", SecretPrefix)
	}
	return key, nil
}

// Sign returns the webhook-signature value for one request.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Platform is push.PlatformWebhook.
func (s *Sender) Platform() string { return push.PlatformWebhook }

// Event is the JSON body posted for one push.
type Event struct {
	Type    string        `json:"type"` // "push"
	Device  EventDevice   `json:"device"`
	Message *push.Message `json:"message"`
	// TTL in seconds, when the message has one.
	TTL int64 `json:"ttl,omitempty"`
}

// EventDevice is the part of a device the operator sees: never its keys.
type EventDevice struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	User     string `json:"user"`
	Locale   string `json:"locale,omitempty"`
}

// Send posts m for d to the operator's URL.
func (s *Sender) Send(ctx context.Context, d *push.Device, m *push.Message) error {
	shown := *m
	shown.Devices = nil // which devices a clearing push goes to is Herald's business
	ev := Event{
		Type:    "push",
		Device:  EventDevice{ID: d.ID, Platform: d.Platform, User: d.User, Locale: d.Locale},
		Message: &shown,
		TTL:     int64(m.TTL / time.Second),
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return &push.Error{Outcome: push.Failed, Err: fmt.Errorf("hook: encode: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return &push.Error{Outcome: push.Failed, Err: fmt.Errorf("hook: %w", err)}
	}
	id := m.ID + "_" + d.ID
	ts := s.opts.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Herald-Webhook/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if s.key != nil {
		req.Header.Set("webhook-signature", Sign(s.key, id, ts, body))
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		if errors.Is(err, safedial.ErrForbidden) {
			return &push.Error{Outcome: push.Failed, Reason: "ForbiddenEndpoint", Err: err}
		}
		return &push.Error{Outcome: push.Retry, Err: err}
	}
	defer resp.Body.Close()
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	return push.StatusError(resp.StatusCode, resp.Header, strings.TrimSpace(string(reason)))
}
