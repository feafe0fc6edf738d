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
// node (Encoded) and shared by every session that receives the event.
type Event struct {
	User    string
	Cursor  Cursor
	Kind    Kind
	ID      string
	Tag     string
	Created time.Time
	Payload []byte // JSON object, without the cursor

	enc [MaxEncodings]encoding
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

// MaxEncodings is how many wire encodings an event caches; each transport
// owns one slot (see pkg/transport/wire).
const MaxEncodings = 2

// encoding is one cached wire form of an event.
type encoding struct {
	once sync.Once
	b    []byte
}

// Encoded returns the event's encoding in slot, built by build the first
// time it is asked for and shared afterwards by every session that
// receives the event; callers must not modify it. A slot is always built
// by the same function.
func (e *Event) Encoded(slot int, build func(*Event) []byte) []byte {
	c := &e.enc[slot]
	c.once.Do(func() { c.b = build(e) })
	return c.b
}

// JSON returns the payload with the cursor spliced in, as the inbox lists it.
func (e *Event) JSON() []byte {
	return e.AppendJSON(make([]byte, 0, len(e.Payload)+48))
}

// AppendJSON appends the payload with the cursor spliced in. Payloads are
// compact JSON objects without a cursor key, so the splice is a prefix.
func (e *Event) AppendJSON(b []byte) []byte {
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
