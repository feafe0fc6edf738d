package notification

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Kind says what an event asks clients to do.
type Kind uint8

const (
	// KindNotification shows a notification; Payload is the Notification JSON.
	KindNotification Kind = 1
	// KindRetract closes a shown notification; Payload is a Retraction JSON.
	KindRetract Kind = 2
)

// Event is the unit the broker stores in a user's history and fans out to
// the nodes holding that user's sessions. Payload is encoded once when the
// event is created; frames for each transport are built from it once per
// node and shared by every session that receives the event.
type Event struct {
	User    string
	Cursor  Cursor
	Kind    Kind
	ID      string
	Tag     string
	Created time.Time
	Payload []byte // JSON object, without the cursor

	wsOnce  sync.Once
	ws      []byte
	sseOnce sync.Once
	sse     []byte
}

// ErrBadEnvelope reports bytes that are not an encoded event.
var ErrBadEnvelope = errors.New("malformed event envelope")

const envelopeVersion = 1

// MarshalEnvelope encodes everything but User and Cursor, which the store
// keeps beside the envelope (the user in the key, the cursor as position).
func (e *Event) MarshalEnvelope() []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+2*binary.MaxVarintLen16+len(e.ID)+len(e.Tag)+len(e.Payload))
	return e.AppendEnvelope(b)
}

// AppendEnvelope appends the envelope encoding of e to b.
func (e *Event) AppendEnvelope(b []byte) []byte {
	b = append(b, envelopeVersion, byte(e.Kind))
	b = binary.AppendVarint(b, e.Created.UnixMicro())
	b = binary.AppendUvarint(b, uint64(len(e.ID)))
	b = append(b, e.ID...)
	b = binary.AppendUvarint(b, uint64(len(e.Tag)))
	b = append(b, e.Tag...)
	return append(b, e.Payload...)
}

// UnmarshalEnvelope decodes an envelope produced by MarshalEnvelope. The
// returned event owns copies of its fields, so b may be reused.
func UnmarshalEnvelope(user string, cur Cursor, b []byte) (*Event, error) {
	if len(b) < 2 || b[0] != envelopeVersion {
		return nil, ErrBadEnvelope
	}
	e := &Event{User: user, Cursor: cur, Kind: Kind(b[1])}
	b = b[2:]
	us, n := binary.Varint(b)
	if n <= 0 {
		return nil, ErrBadEnvelope
	}
	e.Created = time.UnixMicro(us).UTC()
	b = b[n:]
	var ok bool
	if e.ID, b, ok = readString(b); !ok {
		return nil, ErrBadEnvelope
	}
	if e.Tag, b, ok = readString(b); !ok {
		return nil, ErrBadEnvelope
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, ErrBadEnvelope
	}
	e.Payload = append([]byte(nil), b...)
	return e, nil
}

func readString(b []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return "", nil, false
	}
	return string(b[n : n+int(l)]), b[n+int(l):], true
}

// WSFrame returns the WebSocket text message for the event:
// {"type":"notification","notification":{…}} or {"type":"retract","id":…,"tag":…}.
// It is built once and shared; callers must not modify it.
func (e *Event) WSFrame() []byte {
	wire := e.WSWire()
	return wire[wsHeaderLen(len(wire)):]
}

// WSWire returns the message as a complete server-to-client WebSocket frame
// (final, text, unmasked), ready to be written to the socket. It is built
// once, in the same buffer as WSFrame, and shared.
func (e *Event) WSWire() []byte {
	e.wsOnce.Do(func() {
		size := 48 + len(e.Payload) + 40
		b := make([]byte, maxWSHeader, maxWSHeader+size)
		switch e.Kind {
		case KindReset:
			b = append(b, `{"type":"reset","cursor":"`...)
			b = e.Cursor.AppendTo(b)
			b = append(b, `"}`...)
		case KindRetract:
			b = append(b, `{"type":"retract","cursor":"`...)
			b = e.Cursor.AppendTo(b)
			b = append(b, `",`...)
			b = append(b, e.Payload[1:]...)
		default:
			b = append(b, `{"type":"notification","notification":`...)
			b = e.appendWithCursor(b)
			b = append(b, '}')
		}
		// The header goes right in front of the message, in the room left
		// for the longest one.
		n := len(b) - maxWSHeader
		start := maxWSHeader - wsHeaderSize(n)
		putWSHeader(b[start:maxWSHeader], n)
		e.ws = b[start:]
	})
	return e.ws
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
// frameLen built by WSWire.
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

// SSEFrame returns the Server-Sent Events record for the event: the cursor as
// id, the kind as event name, the notification (or retraction) JSON as data.
func (e *Event) SSEFrame() []byte {
	e.sseOnce.Do(func() {
		b := make([]byte, 0, 64+len(e.Payload)+40)
		b = append(b, "id: "...)
		if !e.Cursor.IsZero() {
			b = e.Cursor.AppendTo(b)
		}
		if e.Kind == KindReset {
			b = append(b, "\nevent: reset\ndata: {\"cursor\":\""...)
			if !e.Cursor.IsZero() {
				b = e.Cursor.AppendTo(b)
			}
			e.sse = append(b, "\"}\n\n"...)
			return
		}
		if e.Kind == KindRetract {
			b = append(b, "\nevent: retract\ndata: "...)
		} else {
			b = append(b, "\nevent: notification\ndata: "...)
		}
		b = e.appendWithCursor(b)
		b = append(b, "\n\n"...)
		e.sse = b
	})
	return e.sse
}

// JSON returns the payload with the cursor spliced in, as the inbox lists it.
func (e *Event) JSON() []byte {
	return e.appendWithCursor(make([]byte, 0, len(e.Payload)+48))
}

// appendWithCursor splices "cursor" into the payload object. Payloads are
// compact JSON objects without a cursor key, so the splice is a prefix.
func (e *Event) appendWithCursor(b []byte) []byte {
	b = append(b, `{"cursor":"`...)
	b = e.Cursor.AppendTo(b)
	b = append(b, '"')
	if len(e.Payload) > 2 {
		b = append(b, ',')
	}
	return append(b, e.Payload[1:]...)
}

// KindReset tells a resuming client that its cursor could not be resumed
// from; Cursor is the head of the history (zero when empty), so the client
// continues from there after reloading its inbox.
const KindReset Kind = 3

// NewResetEvent builds the reset frame for a user whose history head is head.
func NewResetEvent(user string, head Cursor) *Event {
	return &Event{User: user, Cursor: head, Kind: KindReset, Payload: []byte("{}")}
}

// EnvelopeCreated reads the creation time from an envelope without decoding
// the rest, for retention checks.
func EnvelopeCreated(b []byte) (time.Time, bool) {
	if len(b) < 3 || b[0] != envelopeVersion {
		return time.Time{}, false
	}
	us, n := binary.Varint(b[2:])
	if n <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}
