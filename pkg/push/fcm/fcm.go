// Package fcm sends notifications through Firebase Cloud Messaging's HTTP
// v1 API with firebase.google.com/go/v4, authenticated by a service
// account (OAuth2 JWT-bearer grant against the account's token_uri).
package fcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/heraldhq/herald/pkg/push"
)

// Scope is the OAuth2 scope Herald asks for: sending messages, nothing else.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// MaxPayload bounds the encoded message; FCM's own limit is 4096 bytes of
// payload.
const MaxPayload = 4000

// DefaultTTL is how long FCM keeps an undelivered message when neither the
// message nor Options say.
const DefaultTTL = 24 * time.Hour

// Options configure a Sender.
type Options struct {
	CredentialsJSON []byte // service-account JSON (type "service_account")
	// Endpoint overrides the API base URL, e.g. a fake's "https://127.0.0.1:port"
	// (a path-less URL gets "/v1"). Empty: https://fcm.googleapis.com/v1.
	Endpoint string
	// HTTPClient is the base client for both the token exchange and the
	// sends; its transport must not add auth. nil: a client with system roots.
	HTTPClient *http.Client
	TTL        time.Duration // default DefaultTTL
}

// Sender is the FCM push.Sender.
type Sender struct {
	client  *messaging.Client
	tokens  oauth2.TokenSource
	project string
	ttl     time.Duration
}

// New reads the service account and builds the messaging client. It does
// not fetch a token yet.
func New(ctx context.Context, o Options) (*Sender, error) {
	var sa struct {
		Type      string `json:"type"`
		ProjectID string `json:"project_id"`
	}
	if err := json.Unmarshal(o.CredentialsJSON, &sa); err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	if sa.Type != "service_account" || sa.ProjectID == "" {
		return nil, errors.New("fcm: credentials must be a service-account JSON with project_id")
	}
	base := o.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 30 * time.Second}
	}
	// The token source outlives ctx: it refreshes the token on later sends.
	tctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, base)
	creds, err := google.CredentialsFromJSONWithType(tctx, o.CredentialsJSON, google.ServiceAccount, Scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	hc := &http.Client{
		Transport: &oauth2.Transport{Source: creds.TokenSource, Base: transport},
		Timeout:   base.Timeout,
	}
	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if o.Endpoint != "" {
		ep, err := endpoint(o.Endpoint)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithEndpoint(ep))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: sa.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: messaging: %w", err)
	}
	ttl := o.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Sender{client: client, tokens: creds.TokenSource, project: sa.ProjectID, ttl: ttl}, nil
}

// endpoint makes the override what messaging.Client expects: the base that
// "/projects/{id}/messages:send" is appended to.
func endpoint(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("fcm: Endpoint %q is not an http(s) URL", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1"
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Platform is push.PlatformFCM.
func (s *Sender) Platform() string { return push.PlatformFCM }

// Project is the Firebase project the Sender sends for.
func (s *Sender) Project() string { return s.project }

// Send pushes m to d's registration token.
func (s *Sender) Send(ctx context.Context, d *push.Device, m *push.Message) error {
	msg, err := s.Message(d.Token, m)
	if err != nil {
		return &push.Error{Outcome: push.Failed, Reason: "PayloadTooLarge", Err: err}
	}
	if err := s.token(); err != nil {
		return err
	}
	_, err = s.client.Send(ctx, msg)
	return outcome(err)
}

// token makes sure an access token is at hand before the SDK sends: the SDK
// treats a failed token exchange as a network error and retries it for
// seconds, while a refused grant is a configuration error to report at once.
// The source caches the token, so this is free until it nears expiry.
func (s *Sender) token() error {
	if _, err := s.tokens.Token(); err != nil {
		return outcome(fmt.Errorf("fcm: access token: %w", err))
	}
	return nil
}

// SendEach pushes m to many devices in one call (FCM v1 SendEach: one HTTP
// request per device, run concurrently by the SDK, at most 500 devices). The
// result has one entry per device, nil for success.
func (s *Sender) SendEach(ctx context.Context, ds []*push.Device, m *push.Message) ([]error, error) {
	if err := s.token(); err != nil {
		return nil, err
	}
	errs := make([]error, len(ds))
	for start := 0; start < len(ds); start += 500 {
		batch := ds[start:min(start+500, len(ds))]
		msgs := make([]*messaging.Message, len(batch))
		for i, d := range batch {
			msg, err := s.Message(d.Token, m)
			if err != nil {
				return nil, &push.Error{Outcome: push.Failed, Reason: "PayloadTooLarge", Err: err}
			}
			msgs[i] = msg
		}
		br, err := s.client.SendEach(ctx, msgs)
		if err != nil {
			return nil, outcome(err)
		}
		for i, r := range br.Responses {
			if !r.Success {
				errs[start+i] = outcome(r.Error)
			}
		}
	}
	return errs, nil
}

func outcome(err error) error {
	if err == nil {
		return nil
	}
	e := &push.Error{Outcome: push.Failed, Err: err}
	if resp := errorutils.HTTPResponse(err); resp != nil {
		e.Status = resp.StatusCode
		e.RetryAfter = push.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	switch {
	case messaging.IsUnregistered(err):
		e.Outcome, e.Reason = push.Gone, "UNREGISTERED"
	case messaging.IsSenderIDMismatch(err):
		e.Outcome, e.Reason = push.Gone, "SENDER_ID_MISMATCH"
	case messaging.IsQuotaExceeded(err):
		e.Outcome, e.Reason = push.Retry, "QUOTA_EXCEEDED"
	case messaging.IsUnavailable(err):
		e.Outcome, e.Reason = push.Retry, "UNAVAILABLE"
	case messaging.IsInternal(err):
		e.Outcome, e.Reason = push.Retry, "INTERNAL"
	case messaging.IsInvalidArgument(err):
		e.Outcome, e.Reason = push.Failed, "INVALID_ARGUMENT"
	case messaging.IsThirdPartyAuthError(err):
		e.Outcome, e.Reason = push.Failed, "THIRD_PARTY_AUTH_ERROR"
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		e.Outcome = push.Retry
	case e.Status == 0:
		// No HTTP answer: the network, or the token exchange. A refused
		// grant is a configuration problem, not worth retrying.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			e.Reason = "OAuth"
		} else {
			e.Outcome = push.Retry
		}
	}
	return e
}

// Message builds the FCM v1 message for token: a notification with the
// Herald frame in data["herald"] (plus id, tag and url for convenience), or
// for a retraction a data-only message. Tag collapses on every platform:
// android collapse_key and notification tag, the Web Push Topic, the APNs
// apns-collapse-id.
func (s *Sender) Message(token string, m *push.Message) (*messaging.Message, error) {
	ttl := m.TTL
	if ttl <= 0 {
		ttl = s.ttl
	}
	var msg *messaging.Message
	_, err := push.Fit(m, MaxPayload, func(m *push.Message) ([]byte, error) {
		var err error
		if msg, err = build(token, m, ttl); err != nil {
			return nil, err
		}
		return json.Marshal(msg)
	})
	return msg, err
}

func build(token string, m *push.Message, ttl time.Duration) (*messaging.Message, error) {
	f, err := push.Frame(m)
	if err != nil {
		return nil, err
	}
	data := map[string]string{"herald": string(f), "id": m.ID}
	if m.Tag != "" {
		data["tag"] = m.Tag
	}
	if m.URL != "" && !m.Silent() {
		data["url"] = m.URL
	}
	if m.Badge != nil {
		data["badge"] = strconv.Itoa(*m.Badge)
	}
	high := m.Urgency == "high"
	msg := &messaging.Message{
		Token: token,
		Data:  data,
		Android: &messaging.AndroidConfig{
			CollapseKey: m.Tag,
			Priority:    "normal",
			TTL:         &ttl,
		},
		Webpush: &messaging.WebpushConfig{Headers: map[string]string{
			"TTL": strconv.FormatInt(int64(ttl/time.Second), 10),
		}},
		APNS: &messaging.APNSConfig{Headers: map[string]string{
			"apns-expiration": strconv.FormatInt(time.Now().Add(ttl).Unix(), 10),
		}},
	}
	if high {
		msg.Android.Priority = "high"
	}
	if t := push.Topic(m.Tag); t != "" {
		msg.Webpush.Headers["Topic"] = t
	}
	if m.Urgency != "" {
		msg.Webpush.Headers["Urgency"] = m.Urgency
	}
	if m.Tag != "" {
		msg.APNS.Headers["apns-collapse-id"] = push.CollapseID(m.Tag)
	}
	if m.Silent() {
		// Data only: the app closes what it showed (data "herald" is the
		// frame). On iOS a known unread total goes out as a badge-only
		// alert push, which shows nothing, else as a background push.
		msg.APNS.Headers["apns-priority"] = "5"
		msg.APNS.Headers["apns-push-type"] = "background"
		if m.Badge != nil {
			msg.APNS.Headers["apns-push-type"] = "alert"
		}
		msg.APNS.Payload = &messaging.APNSPayload{Aps: &messaging.Aps{ContentAvailable: true, Badge: m.Badge}}
		return msg, nil
	}
	msg.Notification = &messaging.Notification{Title: m.Title, Body: m.Body}
	msg.Android.Notification = &messaging.AndroidNotification{Tag: m.Tag, NotificationCount: m.Badge}
	msg.Webpush.Notification = &messaging.WebpushNotification{Title: m.Title, Body: m.Body, Icon: m.Icon, Tag: m.Tag}
	if strings.HasPrefix(m.URL, "https://") {
		msg.Webpush.FCMOptions = &messaging.WebpushFCMOptions{Link: m.URL}
	}
	msg.APNS.Headers["apns-push-type"] = "alert"
	if high {
		msg.APNS.Headers["apns-priority"] = "10"
	} else if m.Urgency == "low" {
		msg.APNS.Headers["apns-priority"] = "5"
	}
	msg.APNS.Payload = &messaging.APNSPayload{Aps: &messaging.Aps{ThreadID: m.Tag, Sound: "default", Badge: m.Badge}}
	return msg, nil
}
