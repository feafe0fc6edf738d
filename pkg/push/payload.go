package push

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

// ErrTooLarge: a message cannot be made to fit a platform's payload limit
// even with its data dropped and its body and title cut.
var ErrTooLarge = errors.New("push: payload too large")

// Frame encodes m the way live clients receive it (pkg/transport/wire),
// so a service worker handles a push and a WebSocket frame with one code
// path, with the unread total as "badge" when it is known:
//
//	{"type":"notification","notification":{"id":…,"title":…,…},"badge":3}
//	{"type":"retract","id":"…","tag":"…","badge":2}
//	{"type":"read","ids":["…"],"tag":"…","badge":0}
func Frame(m *Message) ([]byte, error) {
	var b []byte
	switch {
	case len(m.Clear) > 0:
		c, err := json.Marshal(clearFrame{Type: "read", IDs: m.Clear, Tag: m.Tag})
		if err != nil {
			return nil, err
		}
		b = c
	case m.Retract:
		r, err := json.Marshal(notification.Retraction{ID: m.ID, Tag: m.Tag})
		if err != nil {
			return nil, err
		}
		b = wire.AppendRetract(make([]byte, 0, len(r)+40), notification.Cursor{}, r)
	default:
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
		b = wire.AppendNotification(make([]byte, 0, len(obj)+56), func(b []byte) []byte { return append(b, obj...) })
	}
	if m.Badge != nil {
		b = append(b[:len(b)-1], `,"badge":`...)
		b = strconv.AppendInt(b, int64(*m.Badge), 10)
		b = append(b, '}')
	}
	return b, nil
}

// clearFrame is the frame of a clearing push: the read frame live
// sessions receive, with the ids it resolved to rather than its selector.
type clearFrame struct {
	Type string   `json:"type"`
	IDs  []string `json:"ids"`
	Tag  string   `json:"tag,omitempty"`
}

// Fit encodes m with encode, shrinking a copy of m until the result is at
// most limit bytes: first Data is dropped, then Body is cut on a rune
// boundary and ends in "…", then Title likewise; a clearing push keeps
// its newest ids. m itself is not changed.
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
	// A clearing push naming more ids than fit keeps the newest: those
	// are the ones still on screen.
	for len(b) > limit && len(c.Clear) > 1 {
		c.Clear = c.Clear[len(c.Clear)/2:]
		if b, err = encode(&c); err != nil {
			return nil, err
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
