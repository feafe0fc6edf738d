// Package webpush sends notifications to browsers' service workers over the
// Web Push protocol (RFC 8030), encrypted per RFC 8291 and signed with VAPID
// (RFC 8292), using github.com/SherClockHolmes/webpush-go.
package webpush

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/safedial"
)

// MaxPayload is the largest plaintext Herald sends. webpush-go pads every
// message to one 4096-byte record (the limit push services accept), which
// leaves 3993 bytes of plaintext; the rest is headroom.
const MaxPayload = 3800

// DefaultTTL is how long a push service keeps an undelivered message when
// neither the message nor Options say.
const DefaultTTL = 24 * time.Hour

// MaxTTL is the longest TTL sent; push services cap it at about four weeks.
const MaxTTL = 28 * 24 * time.Hour

// Options configure a Sender.
type Options struct {
	PublicKey  string // VAPID public key, base64url uncompressed P-256 point
	PrivateKey string // VAPID private key, base64url 32-byte scalar
	// Subject is the contact the push services see: "mailto:ops@example.com"
	// or an https URL. A bare address gets "mailto:".
	Subject string
	// Client sends the requests. nil: safedial.Client(nil), which refuses
	// private and loopback endpoints.
	Client *http.Client
	TTL    time.Duration // default DefaultTTL
}

// Sender is the Web Push push.Sender.
type Sender struct {
	opts       Options
	subscriber string
}

// New checks the VAPID key pair and returns a Sender.
func New(o Options) (*Sender, error) {
	var errs []error
	pub, err := decodeKey(o.PublicKey)
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		errs = append(errs, errors.New("webpush: PublicKey must be a base64url uncompressed P-256 point (65 bytes)"))
	}
	priv, err := decodeKey(o.PrivateKey)
	var key *ecdh.PrivateKey
	if err == nil && len(priv) == 32 {
		key, err = ecdh.P256().NewPrivateKey(priv)
	}
	if err != nil || key == nil {
		errs = append(errs, errors.New("webpush: PrivateKey must be a base64url P-256 private key (32 bytes)"))
	} else if len(pub) == 65 && string(key.PublicKey().Bytes()) != string(pub) {
		errs = append(errs, errors.New("webpush: PublicKey does not belong to PrivateKey"))
	}
	sub := subscriber(o.Subject)
	if sub == "" {
		errs = append(errs, errors.New("webpush: Subject (mailto: address or https URL) is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.Client == nil {
		o.Client = safedial.Client(nil)
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	return &Sender{opts: o, subscriber: sub}, nil
}

// subscriber turns Subject into what webpush-go wants: it prefixes
// "mailto:" to anything that does not start with "https:", so a subject
// already in mailto: form must lose its prefix or the JWT says
// "mailto:mailto:…".
func subscriber(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
	}
	return s
}

// Platform is push.PlatformWebPush.
func (s *Sender) Platform() string { return push.PlatformWebPush }

// Send encrypts m for d's subscription and posts it to d's push service.
func (s *Sender) Send(ctx context.Context, d *push.Device, m *push.Message) error {
	if d.Endpoint == "" || d.P256dh == "" || d.Auth == "" {
		return &push.Error{Outcome: push.Failed, Reason: "InvalidSubscription", Err: errors.New("webpush: device has no endpoint or keys")}
	}
	if len(m.Clear) > 0 && revokesSilentPushes(d.Endpoint) {
		return push.ErrSkipped
	}
	payload, err := Payload(m, d)
	if err != nil {
		return &push.Error{Outcome: push.Failed, Reason: "PayloadTooLarge", Err: err}
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = s.opts.TTL
	}
	ttl = min(ttl, MaxTTL)
	// The VAPID JWT's exp is not set here: webpush-go v1.4.0 ignores
	// VapidExpiration and always signs exp = now + 12 h, inside RFC 8292's
	// 24 h limit (TestSendDeliversEncryptedPayloadWithHeaders checks it).
	opts := &webpushgo.Options{
		HTTPClient:      s.opts.Client,
		Subscriber:      s.subscriber,
		Topic:           push.Topic(m.Tag),
		TTL:             int(ttl / time.Second),
		Urgency:         urgency(m.Urgency),
		VAPIDPublicKey:  s.opts.PublicKey,
		VAPIDPrivateKey: s.opts.PrivateKey,
	}
	sub := &webpushgo.Subscription{Endpoint: d.Endpoint, Keys: webpushgo.Keys{P256dh: d.P256dh, Auth: d.Auth}}
	resp, err := webpushgo.SendNotificationWithContext(ctx, payload, sub, opts)
	if err != nil {
		var ue *url.Error
		switch {
		case errors.Is(err, safedial.ErrForbidden):
			return &push.Error{Outcome: push.Failed, Reason: "ForbiddenEndpoint", Err: err}
		case errors.As(err, &ue):
			return &push.Error{Outcome: push.Retry, Err: err}
		default:
			// Bad subscription keys: webpush-go fails before any I/O.
			return &push.Error{Outcome: push.Failed, Reason: "InvalidSubscription", Err: err}
		}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return push.StatusError(resp.StatusCode, resp.Header, strings.TrimSpace(string(body)))
}

func urgency(u string) webpushgo.Urgency {
	switch u {
	case "high":
		return webpushgo.UrgencyHigh
	case "low":
		return webpushgo.UrgencyLow
	case "normal":
		return webpushgo.UrgencyNormal
	}
	return "" // header left out: the push service assumes normal
}

// GenerateVAPIDKeys makes a new VAPID key pair, both base64url without
// padding: the public key as an uncompressed point (what browsers take as
// applicationServerKey), the private key as its 32-byte scalar.
func GenerateVAPIDKeys() (public, private string, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("webpush: generate VAPID keys: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
		base64.RawURLEncoding.EncodeToString(k.Bytes()), nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	return base64.RawURLEncoding.DecodeString(s)
}

// revokesSilentPushes reports whether endpoint belongs to Apple's push
// service, whose browsers revoke a subscription after a few pushes that
// show nothing: clearing pushes are not sent there, and the badge follows
// the next notification's app_badge instead.
func revokesSilentPushes(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "web.push.apple.com" || strings.HasSuffix(h, ".push.apple.com")
}
