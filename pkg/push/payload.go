package push

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

// ErrTooLarge: a message cannot be made to fit a platform's payload limit
// even with its data dropped and its body and title cut.
var ErrTooLarge = errors.New("push: payload too large")

// Frame encodes m the way live clients receive it (pkg/transport/wire),
// so a service worker handles a push and a WebSocket frame with one code
// path:
//
//	{"type":"notification","notification":{"id":…,"title":…,…}}
//	{"type":"retract","id":"…","tag":"…"}
func Frame(m *Message) ([]byte, error) {
	if m.Retract {
		r, err := json.Marshal(notification.Retraction{ID: m.ID, Tag: m.Tag})
		if err != nil {
			return nil, err
		}
		return wire.AppendRetract(make([]byte, 0, len(r)+24), notification.Cursor{}, r), nil
	}
	n := notification.Notification{
		ID: m.ID, User: m.User, Type: m.Type, Title: m.Title, Body: m.Body,
		Icon: m.Icon, URL: m.URL, Tag: m.Tag, Urgency: m.Urgency, CreatedAt: m.Created.UTC(),
	}
	if len(m.Data) > 0 {
		d, err := json.Marshal(m.Data)
		if err != nil {
			return nil, err
		}
		n.Data = d
	}
	obj, err := json.Marshal(&n)
	if err != nil {
		return nil, err
	}
	return wire.AppendNotification(make([]byte, 0, len(obj)+40), func(b []byte) []byte { return append(b, obj...) }), nil
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
