package webpush

import (
	"encoding/json"
	"net/url"
	"time"

	"github.com/heraldhq/herald/pkg/push"
)

// DeclarativeVersion is the "web_push" member that marks a declarative
// push message (the Push API's declarative push message, shipped in
// WebKit: Safari 18.4 on iOS and iPadOS, 18.5 on macOS).
const DeclarativeVersion = 8030

// Declarative is a declarative push message. A browser that understands
// it shows Notification itself, without running the service worker, and
// never counts it as a push that showed nothing; Mutable still lets the
// worker see it. Any other browser hands the same JSON to the worker's
// push event, where herald-sw.js shows it from the same fields.
type Declarative struct {
	WebPush      int                     `json:"web_push"`
	Notification DeclarativeNotification `json:"notification"`
	Mutable      bool                    `json:"mutable"`
}

// DeclarativeNotification is the notification member. Navigate, the page
// a click opens, must be an absolute URL.
type DeclarativeNotification struct {
	Title     string          `json:"title"`
	Body      string          `json:"body,omitempty"`
	Navigate  string          `json:"navigate"`
	Tag       string          `json:"tag,omitempty"`
	Icon      string          `json:"icon,omitempty"`
	Lang      string          `json:"lang,omitempty"`
	AppBadge  *int            `json:"app_badge,omitempty"`
	Timestamp int64           `json:"timestamp,omitempty"` // unix ms
	Data      DeclarativeData `json:"data"`
}

// DeclarativeData is what herald-sw.js and herald.js need beyond the shown
// fields: the id to de-duplicate and close by, and the notification's own
// fields as live frames carry them.
type DeclarativeData struct {
	ID      string         `json:"id"`
	User    string         `json:"user,omitempty"`
	Type    string         `json:"type,omitempty"`
	URL     string         `json:"url,omitempty"`
	Urgency string         `json:"urgency,omitempty"`
	Created time.Time      `json:"created_at"`
	Data    map[string]any `json:"data,omitempty"`
}

// defaultTitle is shown for a notification without a title, which a
// declarative message must have; herald-sw.js uses the same.
const defaultTitle = "New notification"

// Payload is the plaintext pushed for m to d, fitted to MaxPayload: a
// declarative push message when d's service worker scope is known (a
// client that reports it runs a worker that reads one), else push.Frame.
// Retractions and clearing pushes are never declarative: they show
// nothing, they close. The unread total, when known, is app_badge.
func Payload(m *push.Message, d *push.Device) ([]byte, error) {
	base := scopeURL(d)
	if m.Silent() || base == nil {
		return push.Fit(m, MaxPayload, push.Frame)
	}
	return push.Fit(m, MaxPayload, func(m *push.Message) ([]byte, error) {
		return json.Marshal(declarative(m, d, base))
	})
}

func declarative(m *push.Message, d *push.Device, base *url.URL) *Declarative {
	title := m.Title
	if title == "" {
		title = defaultTitle
	}
	n := DeclarativeNotification{
		Title:    title,
		Body:     m.Body,
		Navigate: resolve(base, m.URL),
		Tag:      m.Tag,
		Lang:     d.Locale,
		AppBadge: m.Badge,
		Data: DeclarativeData{
			ID: m.ID, User: m.User, Type: m.Type, URL: m.URL, Urgency: m.Urgency,
			Created: m.Created.UTC(), Data: m.Data,
		},
	}
	if m.Icon != "" {
		n.Icon = resolve(base, m.Icon)
	}
	if !m.Created.IsZero() {
		n.Timestamp = m.Created.UnixMilli()
	}
	return &Declarative{WebPush: DeclarativeVersion, Notification: n, Mutable: true}
}

// scopeURL is d's service worker scope, or nil when it is unknown or not
// an absolute http(s) URL.
func scopeURL(d *push.Device) *url.URL {
	if d == nil || d.Scope == "" {
		return nil
	}
	u, err := url.Parse(d.Scope)
	if err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil
	}
	return u
}

// resolve makes ref absolute against base; anything that does not end up
// an http(s) URL is replaced by base, so a click opens the app.
func resolve(base *url.URL, ref string) string {
	if ref == "" {
		return base.String()
	}
	r, err := url.Parse(ref)
	if err != nil {
		return base.String()
	}
	u := base.ResolveReference(r)
	if u.Scheme != "https" && u.Scheme != "http" {
		return base.String()
	}
	return u.String()
}
