// Package push sends notifications to devices that have no live session:
// Web Push (VAPID) to service workers, FCM, APNs, and an outgoing signed
// webhook. Each channel is a Sender in its own package; this package holds
// what they share: the message, the device, and the outcome of a send.
package push

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Platforms, as registered in POST /v1/devices.
const (
	PlatformWebPush = "webpush"
	PlatformFCM     = "fcm"
	PlatformAPNs    = "apns"
	PlatformWebhook = "webhook"
)

// Device is one registered push target of a user. Keys are secrets: they
// never appear in logs or API answers.
type Device struct {
	ID       string `json:"id"`
	User     string `json:"user"`
	Platform string `json:"platform"`
	// Web Push subscription.
	Endpoint string `json:"endpoint,omitempty"`
	P256dh   string `json:"p256dh,omitempty"` // base64url, uncompressed P-256 point
	Auth     string `json:"auth,omitempty"`   // base64url, 16 bytes
	// Scope is the absolute URL of the service worker registration that
	// subscribed, as the browser reported it. With it Web Push sends
	// declarative push messages, whose click target must be absolute.
	Scope string `json:"scope,omitempty"`
	// FCM registration token or APNs device token (hex).
	Token   string    `json:"token,omitempty"`
	Session string    `json:"session,omitempty"` // the token session that registered it
	Locale  string    `json:"locale,omitempty"`
	Label   string    `json:"label,omitempty"`
	Created time.Time `json:"created"`
}

// Message is what is pushed: a notification, or a retraction of one.
type Message struct {
	ID      string         `json:"id"`
	User    string         `json:"user"`
	Type    string         `json:"type,omitempty"`
	Title   string         `json:"title,omitempty"`
	Body    string         `json:"body,omitempty"`
	Icon    string         `json:"icon,omitempty"`
	URL     string         `json:"url,omitempty"`
	Tag     string         `json:"tag,omitempty"`
	Urgency string         `json:"urgency,omitempty"` // high|normal|low
	TTL     time.Duration  `json:"-"`                 // 0: the sender's default
	Data    map[string]any `json:"data,omitempty"`
	// Retract asks the device to close the notification ID / Tag instead of
	// showing anything (a data-only push).
	Retract bool `json:"retract,omitempty"`
	// Clear is a clearing push: the notifications with these ids were read
	// or dismissed elsewhere; the device closes them and shows nothing. Tag
	// is set when they all share it.
	Clear []string `json:"clear,omitempty"`
	// Badge is the user's unread total when the push is sent (nil: not
	// known); platforms put it on the app icon.
	Badge *int `json:"badge,omitempty"`
	// Devices, when set, limits the push to these of the user's devices
	// (a clearing push goes only where the notifications were shown).
	Devices []string  `json:"devices,omitempty"`
	Created time.Time `json:"created_at"`
}

// Silent reports whether m shows nothing: a retraction or a clearing push.
func (m *Message) Silent() bool { return m.Retract || len(m.Clear) > 0 }

// ErrSkipped is returned by a Sender that deliberately sends nothing for
// a message to a device (e.g. a clearing push to a push service that
// revokes subscriptions for pushes that show nothing).
var ErrSkipped = errors.New("push: not sent to this device")

// ErrTooManyDevices is returned by a store's RegisterDevice when the user
// already has as many devices as the limit allows.
var ErrTooManyDevices = errors.New("push: too many devices")

// Sender delivers one message to one device of its platform.
type Sender interface {
	Platform() string
	// Send returns nil on success, or an *Error saying what to do next.
	Send(ctx context.Context, d *Device, m *Message) error
}

// Outcome classifies a failed send.
type Outcome int

const (
	// Failed: a permanent failure of this message (bad payload, auth); the
	// device is kept.
	Failed Outcome = iota
	// Gone: the device no longer exists (404/410, Unregistered,
	// BadDeviceToken, FCM UNREGISTERED); remove it.
	Gone
	// Retry: a temporary failure (429, 5xx, network); retry after
	// RetryAfter if set, else with backoff.
	Retry
	// Skipped: the sender sent nothing on purpose (ErrSkipped).
	Skipped
)

func (o Outcome) String() string {
	switch o {
	case Gone:
		return "gone"
	case Retry:
		return "retry"
	case Skipped:
		return "skipped"
	default:
		return "failed"
	}
}

// Error is a failed send.
type Error struct {
	Outcome    Outcome
	Status     int           // HTTP status, when there was one
	Reason     string        // provider's reason, e.g. "Unregistered"
	RetryAfter time.Duration // from Retry-After, when given
	Err        error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("push %s: status %d", e.Outcome, e.Status)
	if e.Reason != "" {
		msg += " " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// OutcomeOf returns the outcome of err: nil is success (ok = true); an
// error that is not an *Error counts as Retry (network trouble).
func OutcomeOf(err error) (o Outcome, ok bool) {
	if err == nil {
		return 0, true
	}
	if errors.Is(err, ErrSkipped) {
		return Skipped, false
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Outcome, false
	}
	return Retry, false
}
