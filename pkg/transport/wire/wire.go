// Package wire encodes what live clients receive: the JSON messages of
// SPEC §4 ({"type":"notification",…}, "retract", "reset", "read", "seen",
// "unread"), the WebSocket
// frame that carries one, and the Server-Sent Events record. It does no
// I/O. A live event's encodings are built once per node and cached on the
// event; push senders wrap their payloads in the same messages, so a
// service worker handles a push and a live frame with one code path.
package wire

import (
	"encoding/binary"
	"encoding/json"

	"github.com/heraldhq/herald/pkg/notification"
)

// The event's encoding cache slots this package owns.
const (
	slotWS = iota
	slotSSE
)

// WSMessage returns the WebSocket text message for the event:
// {"type":"notification","notification":{…}}, {"type":"retract",…} or
// {"type":"reset",…}. It is shared; callers must not modify it.
func WSMessage(ev *notification.Event) []byte {
	f := WSFrame(ev)
	return f[wsHeaderLen(len(f)):]
}

// WSFrame returns the message as a complete server-to-client WebSocket
// frame (final, text, unmasked), ready to be written to the socket. It is
// built once, in the same buffer as WSMessage, and shared.
func WSFrame(ev *notification.Event) []byte { return ev.Encoded(slotWS, buildWSFrame) }

func buildWSFrame(ev *notification.Event) []byte {
	b := make([]byte, maxWSHeader, maxWSHeader+88+len(ev.Payload))
	b = AppendMessage(b, ev)
	// The header goes right in front of the message, in the room left for
	// the longest one.
	n := len(b) - maxWSHeader
	start := maxWSHeader - wsHeaderSize(n)
	putWSHeader(b[start:maxWSHeader], n)
	return b[start:]
}

// AppendMessage appends the client message for the event, with its cursor.
func AppendMessage(b []byte, ev *notification.Event) []byte {
	switch ev.Kind {
	case notification.KindReset:
		b = append(b, `{"type":"reset","cursor":"`...)
		b = ev.Cursor.AppendTo(b)
		return append(b, `"}`...)
	case notification.KindRetract:
		return AppendRetract(b, ev.Cursor, ev.Payload)
	case notification.KindMark, notification.KindUnread:
		return appendTyped(b, typeOf(ev), ev.Cursor, ev.Payload)
	default:
		return AppendNotification(b, ev.AppendJSON)
	}
}

// typeOf is the message type of a read-state event: "unread" for counts,
// "seen" for a mark of seen, "delivered" for a push handed to devices,
// "read" for a read or a dismissal (both close the popups; the payload's
// "state" tells them apart).
func typeOf(ev *notification.Event) string {
	if ev.Kind == notification.KindUnread {
		return "unread"
	}
	var m struct {
		State string `json:"state"`
	}
	if json.Unmarshal(ev.Payload, &m) == nil {
		switch m.State {
		case notification.StateSeen:
			return "seen"
		case notification.StateDelivered:
			return "delivered"
		}
	}
	return "read"
}

// appendTyped appends {"type":typ,"cursor":…,<the payload's members>}.
func appendTyped(b []byte, typ string, cur notification.Cursor, payload []byte) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if !cur.IsZero() {
		b = append(b, `,"cursor":"`...)
		b = cur.AppendTo(b)
		b = append(b, '"')
	}
	if len(payload) > 2 {
		b = append(b, ',')
	}
	return append(b, payload[1:]...)
}

// AppendNotification appends {"type":"notification","notification":…},
// the notification object written by obj.
func AppendNotification(b []byte, obj func([]byte) []byte) []byte {
	b = append(b, `{"type":"notification","notification":`...)
	b = obj(b)
	return append(b, '}')
}

// AppendRetract appends {"type":"retract","cursor":…,"id":…,"tag":…} from a
// retraction object (notification.Retraction's JSON); a zero cursor is
// left out.
func AppendRetract(b []byte, cur notification.Cursor, retraction []byte) []byte {
	b = append(b, `{"type":"retract",`...)
	if !cur.IsZero() {
		b = append(b, `"cursor":"`...)
		b = cur.AppendTo(b)
		b = append(b, `",`...)
	}
	return append(b, retraction[1:]...)
}

const maxWSHeader = 10

// wsHeaderSize is the length of an unmasked frame header for a payload of n
// bytes (RFC 6455 section 5.2).
func wsHeaderSize(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// wsHeaderLen reads back the header size of a frame of total length
// frameLen built by WSFrame.
func wsHeaderLen(frameLen int) int {
	for _, h := range [...]int{2, 4, 10} {
		if wsHeaderSize(frameLen-h) == h {
			return h
		}
	}
	return 10
}

func putWSHeader(h []byte, n int) {
	h[0] = 0x81 // FIN, text
	switch len(h) {
	case 2:
		h[1] = byte(n)
	case 4:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
}

// SSERecord returns the Server-Sent Events record for the event: the
// cursor as id, the kind as event name, the notification (or retraction,
// or reset) JSON as data. It is built once and shared.
func SSERecord(ev *notification.Event) []byte { return ev.Encoded(slotSSE, buildSSERecord) }

func buildSSERecord(ev *notification.Event) []byte {
	b := make([]byte, 0, 104+len(ev.Payload))
	b = append(b, "id: "...)
	if !ev.Cursor.IsZero() {
		b = ev.Cursor.AppendTo(b)
	}
	switch ev.Kind {
	case notification.KindReset:
		b = append(b, "\nevent: reset\ndata: {\"cursor\":\""...)
		if !ev.Cursor.IsZero() {
			b = ev.Cursor.AppendTo(b)
		}
		return append(b, "\"}\n\n"...)
	case notification.KindRetract:
		b = append(b, "\nevent: retract\ndata: "...)
	case notification.KindMark, notification.KindUnread:
		b = append(b, "\nevent: "...)
		b = append(b, typeOf(ev)...)
		b = append(b, "\ndata: "...)
	default:
		b = append(b, "\nevent: notification\ndata: "...)
	}
	b = ev.AppendJSON(b)
	return append(b, "\n\n"...)
}

// SSEKeepAlive is the comment record that keeps an idle stream open.
const SSEKeepAlive = ": keep-alive\n\n"

// SSERetry is the reconnect delay hint that opens every stream.
const SSERetry = "retry: 2000\n\n"

// MaxAckID is the longest notification id an ack may name.
const MaxAckID = 128

// clientMessage is what clients send: {"type":"ack","id":"…"} or
// {"type":"ack","ids":[…]}.
type clientMessage struct {
	Type string   `json:"type"`
	ID   string   `json:"id"`
	IDs  []string `json:"ids"`
}

// ParseAck reads a client's ack message: the ids it acknowledges, at most
// maxIDs of them, each at most MaxAckID bytes for the single form. A
// single id is returned in one, so the common ack allocates no slice. It
// reports false for anything else.
func ParseAck(data []byte, one *[1]string, maxIDs int) ([]string, bool) {
	var m clientMessage
	if json.Unmarshal(data, &m) != nil || m.Type != "ack" {
		return nil, false
	}
	switch {
	case m.ID != "" && len(m.ID) <= MaxAckID:
		one[0] = m.ID
		return one[:], true
	case len(m.IDs) > 0 && len(m.IDs) <= maxIDs:
		return m.IDs, true
	}
	return nil, false
}
