package push

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ErrTooLarge: a message cannot be made to fit a platform's payload limit
// even with its data dropped and its body and title cut.
var ErrTooLarge = errors.New("push: payload too large")

// notification is a Message as clients see it (SPEC §4): the same fields a
// live WebSocket frame carries, without the push-only ones.
type notification struct {
	ID      string         `json:"id"`
	User    string         `json:"user,omitempty"`
	Type    string         `json:"type,omitempty"`
	Title   string         `json:"title,omitempty"`
	Body    string         `json:"body,omitempty"`
	Icon    string         `json:"icon,omitempty"`
	URL     string         `json:"url,omitempty"`
	Tag     string         `json:"tag,omitempty"`
	Urgency string         `json:"urgency,omitempty"`
	Data    map[string]any `json:"data,omitempty"`
	Created *time.Time     `json:"created_at,omitempty"`
}

type frame struct {
	Type         string        `json:"type"`
	Notification *notification `json:"notification,omitempty"`
	ID           string        `json:"id,omitempty"`
	Tag          string        `json:"tag,omitempty"`
}

// Frame encodes m the way live clients receive it, so a service worker
// handles a push and a WebSocket frame with one code path:
//
//	{"type":"notification","notification":{"id":…,"title":…,…}}
//	{"type":"retract","id":"…","tag":"…"}
func Frame(m *Message) ([]byte, error) {
	if m.Retract {
		return json.Marshal(frame{Type: "retract", ID: m.ID, Tag: m.Tag})
	}
	n := &notification{
		ID: m.ID, User: m.User, Type: m.Type, Title: m.Title, Body: m.Body,
		Icon: m.Icon, URL: m.URL, Tag: m.Tag, Urgency: m.Urgency, Data: m.Data,
	}
	if !m.Created.IsZero() {
		c := m.Created.UTC()
		n.Created = &c
	}
	return json.Marshal(frame{Type: "notification", Notification: n})
}

// Fit encodes m with encode, shrinking a copy of m until the result is at
// most limit bytes: first Data is dropped, then Body is cut on a rune
// boundary and ends in "…", then Title likewise. m itself is not changed.
// It returns ErrTooLarge when nothing more can be cut.
func Fit(m *Message, limit int, encode func(*Message) ([]byte, error)) ([]byte, error) {
	b, err := encode(m)
	if err != nil || len(b) <= limit {
		return b, err
	}
	c := *m
	if len(c.Data) > 0 {
		c.Data = nil
		if b, err = encode(&c); err != nil || len(b) <= limit {
			return b, err
		}
	}
	// Each round cuts at least the excess from the raw text; JSON escaping
	// only makes the encoded text shrink faster, so this ends in a few rounds.
	for _, field := range []*string{&c.Body, &c.Title} {
		for len(b) > limit && *field != "" {
			*field = cut(*field, len(b)-limit)
			if b, err = encode(&c); err != nil {
				return nil, err
			}
		}
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), limit)
	}
	return b, nil
}

const ellipsis = "…"

// cut shortens s by at least excess bytes, plus room for an ellipsis, on a
// rune boundary.
func cut(s string, excess int) string {
	s = trimEllipsis(s)
	n := len(s) - excess - len(ellipsis)
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	if n == 0 {
		return ""
	}
	return s[:n] + ellipsis
}

func trimEllipsis(s string) string {
	if len(s) >= len(ellipsis) && s[len(s)-len(ellipsis):] == ellipsis {
		return s[:len(s)-len(ellipsis)]
	}
	return s
}
