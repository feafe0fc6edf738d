// Package apns sends notifications to iOS apps through Apple's HTTP/2 APNs
// provider API, using github.com/sideshow/apns2, with token (.p8) or
// certificate (.p12) authentication.
package apns

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/certificate"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"github.com/heraldhq/herald/pkg/push"
)

// MaxPayload is APNs' limit for a regular notification.
const MaxPayload = 4096

// DefaultTTL is how long APNs keeps an undelivered notification when
// neither the message nor Options say.
const DefaultTTL = 24 * time.Hour

// Options configure a Sender: either token auth (KeyP8, KeyID, TeamID) or
// certificate auth (CertP12, CertPassword).
type Options struct {
	KeyP8  []byte // the .p8 file (PKCS#8 PEM)
	KeyID  string
	TeamID string

	CertP12      []byte // the .p12 file
	CertPassword string

	Topic      string // the app's bundle ID
	Production bool   // api.push.apple.com instead of the sandbox
	Host       string // overrides the host, e.g. a test server's URL

	// TLSConfig is the base TLS configuration (tests set RootCAs to trust a
	// fake). nil: system roots.
	TLSConfig *tls.Config
	TTL       time.Duration // default DefaultTTL
	Timeout   time.Duration // per request, default 30s
}

// Sender is the APNs push.Sender. It keeps one HTTP/2 connection open, as
// Apple asks.
type Sender struct {
	client *apns2.Client
	topic  string
	ttl    time.Duration
	cert   *x509.Certificate
}

// New checks o and returns a Sender. It does not connect yet.
func New(o Options) (*Sender, error) {
	var errs []error
	if o.Topic == "" {
		errs = append(errs, errors.New("apns: Topic (bundle ID) is required"))
	}
	tokenAuth := len(o.KeyP8) > 0
	certAuth := len(o.CertP12) > 0
	if tokenAuth == certAuth {
		errs = append(errs, errors.New("apns: give exactly one of KeyP8 (token auth) or CertP12 (certificate auth)"))
	}
	var tlsConf *tls.Config
	if o.TLSConfig != nil {
		tlsConf = o.TLSConfig.Clone()
	} else {
		tlsConf = &tls.Config{}
	}
	tlsConf.MinVersion = max(tlsConf.MinVersion, tls.VersionTLS12)
	s := &Sender{topic: o.Topic, ttl: o.TTL}
	var tok *token.Token
	switch {
	case tokenAuth && !certAuth:
		key, err := token.AuthKeyFromBytes(o.KeyP8)
		if err != nil {
			errs = append(errs, fmt.Errorf("apns: KeyP8: %w", err))
			break
		}
		if o.KeyID == "" || o.TeamID == "" {
			errs = append(errs, errors.New("apns: KeyID and TeamID are required with KeyP8"))
			break
		}
		tok = &token.Token{AuthKey: key, KeyID: o.KeyID, TeamID: o.TeamID}
		if _, err := tok.Generate(); err != nil {
			errs = append(errs, fmt.Errorf("apns: sign token: %w", err))
		}
	case certAuth && !tokenAuth:
		cert, err := certificate.FromP12Bytes(o.CertP12, o.CertPassword)
		if err != nil {
			errs = append(errs, fmt.Errorf("apns: CertP12: %w", err))
			break
		}
		tlsConf.Certificates = []tls.Certificate{cert}
		s.cert = cert.Leaf
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	host := apns2.HostDevelopment
	if o.Production {
		host = apns2.HostProduction
	}
	if o.Host != "" {
		host = o.Host
	}
	s.client = &apns2.Client{
		Host:  host,
		Token: tok,
		HTTPClient: &http.Client{
			Transport: &http2.Transport{
				TLSClientConfig: tlsConf,
				ReadIdleTimeout: 15 * time.Second,
				PingTimeout:     5 * time.Second,
			},
			Timeout: o.Timeout,
		},
	}
	if s.cert != nil {
		s.client.Certificate = tlsConf.Certificates[0]
	}
	return s, nil
}

// CertificateNotAfter returns when a .p12 APNs certificate expires, for a
// "days until expiry" gauge.
func CertificateNotAfter(p12 []byte, password string) (time.Time, error) {
	cert, err := certificate.FromP12Bytes(p12, password)
	if err != nil {
		return time.Time{}, fmt.Errorf("apns: read certificate: %w", err)
	}
	return cert.Leaf.NotAfter, nil
}

// NotAfter is when the Sender's certificate expires; zero with token auth,
// whose keys do not expire.
func (s *Sender) NotAfter() time.Time {
	if s.cert == nil {
		return time.Time{}
	}
	return s.cert.NotAfter
}

// Close drops idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Platform is push.PlatformAPNs.
func (s *Sender) Platform() string { return push.PlatformAPNs }

// Send pushes m to d's device token.
func (s *Sender) Send(ctx context.Context, d *push.Device, m *push.Message) error {
	if d.Token == "" {
		return &push.Error{Outcome: push.Gone, Reason: apns2.ReasonMissingDeviceToken, Err: errors.New("apns: device has no token")}
	}
	payload, err := Payload(m)
	if err != nil {
		return &push.Error{Outcome: push.Failed, Reason: apns2.ReasonPayloadTooLarge, Err: err}
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = s.ttl
	}
	n := &apns2.Notification{
		DeviceToken: d.Token,
		Topic:       s.topic,
		CollapseID:  push.CollapseID(m.Tag),
		Expiration:  time.Now().Add(ttl),
		Payload:     payload,
		PushType:    apns2.PushTypeAlert,
		Priority:    apns2.PriorityHigh,
	}
	switch {
	case m.Silent() && m.Badge != nil:
		// A clearing push (or a retraction) that knows the unread total:
		// an alert-type push with only a badge shows nothing and sets the
		// icon; content-available wakes the app to remove what it showed.
		n.Priority = apns2.PriorityLow
	case m.Silent():
		// Apple: background pushes must use priority 5.
		n.PushType = apns2.PushTypeBackground
		n.Priority = apns2.PriorityLow
	case m.Urgency == "low":
		n.Priority = apns2.PriorityLow
	}
	res, err := s.client.PushWithContext(ctx, n)
	if err != nil {
		return &push.Error{Outcome: push.Retry, Err: fmt.Errorf("apns: %w", err)}
	}
	return outcome(res)
}

func outcome(res *apns2.Response) error {
	if res.Sent() {
		return nil
	}
	e := &push.Error{Outcome: push.Failed, Status: res.StatusCode, Reason: res.Reason}
	switch {
	case res.StatusCode == http.StatusGone,
		res.Reason == apns2.ReasonUnregistered,
		res.Reason == apns2.ReasonExpiredToken,
		res.Reason == apns2.ReasonBadDeviceToken,
		res.Reason == apns2.ReasonDeviceTokenNotForTopic:
		e.Outcome = push.Gone
	case res.StatusCode == http.StatusTooManyRequests, res.StatusCode >= 500:
		e.Outcome = push.Retry
	}
	return e
}

type alert struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type aps struct {
	Alert            *alert `json:"alert,omitempty"`
	Sound            string `json:"sound,omitempty"`
	ThreadID         string `json:"thread-id,omitempty"`
	Badge            *int   `json:"badge,omitempty"`
	ContentAvailable int    `json:"content-available,omitempty"`
	MutableContent   int    `json:"mutable-content,omitempty"`
}

type payload struct {
	APS aps `json:"aps"`
	// Herald is push.Frame: the app reads id, url, data… from here.
	Herald json.RawMessage `json:"herald"`
}

// Payload is the APNs JSON for m, at most MaxPayload bytes: an alert with
// the frame beside it, or for a retraction or a clearing push a
// content-available push whose frame tells the app which notifications to
// remove. The unread total, when known, is aps.badge.
func Payload(m *push.Message) ([]byte, error) {
	return push.Fit(m, MaxPayload, func(m *push.Message) ([]byte, error) {
		f, err := push.Frame(m)
		if err != nil {
			return nil, err
		}
		p := payload{Herald: f}
		if m.Silent() {
			p.APS = aps{ContentAvailable: 1, Badge: m.Badge}
		} else {
			p.APS = aps{
				Alert:          &alert{Title: m.Title, Body: m.Body},
				Sound:          "default",
				ThreadID:       m.Tag,
				Badge:          m.Badge,
				MutableContent: 1,
			}
		}
		return json.Marshal(p)
	})
}
