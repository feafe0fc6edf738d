package queuelog

import (
	"encoding/binary"

	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// Record kinds.
const (
	// kindItem is an item's whole state: written when it is enqueued, when
	// a failure schedules its retry, and when it is carried forward out of
	// an old segment. The newest one of a seq is the item's state.
	kindItem byte = 1
	// kindTake raises an item's attempt count when it is handed out.
	kindTake byte = 2
	// kindDone ends an item: acknowledged or moved to the dead letters.
	kindDone byte = 3
)

// record is a decoded record body; key and body alias it.
type record struct {
	kind      byte
	seq       uint64
	attempts  uint64
	notBefore int64 // Unix ns; 0: ready
	enqueued  int64 // Unix ns
	expires   int64 // of the dedupe key, Unix ns
	key       []byte
	body      []byte
}

func appendItem(b []byte, seq uint64, attempts int, notBefore, enqueued, expires int64, key string, body []byte) []byte {
	return segfile.Append(b, func(b []byte) []byte {
		b = append(b, kindItem)
		b = binary.AppendUvarint(b, seq)
		b = binary.AppendUvarint(b, uint64(attempts))
		b = binary.AppendVarint(b, notBefore)
		b = binary.AppendVarint(b, enqueued)
		b = binary.AppendVarint(b, expires)
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		return append(b, body...)
	})
}

func appendTake(b []byte, seq uint64, attempts int) []byte {
	return segfile.Append(b, func(b []byte) []byte {
		b = append(b, kindTake)
		b = binary.AppendUvarint(b, seq)
		return binary.AppendUvarint(b, uint64(attempts))
	})
}

func appendDone(b []byte, seq uint64) []byte {
	return segfile.Append(b, func(b []byte) []byte {
		b = append(b, kindDone)
		return binary.AppendUvarint(b, seq)
	})
}

func parseRecord(body []byte) (record, error) {
	var r record
	if len(body) < 2 {
		return r, segfile.ErrBadRecord
	}
	r.kind = body[0]
	b := body[1:]
	uvarint := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	varint := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	if r.seq = uvarint(); r.seq == 0 || b == nil {
		return r, segfile.ErrBadRecord
	}
	switch r.kind {
	case kindItem:
		r.attempts = uvarint()
		r.notBefore = varint()
		r.enqueued = varint()
		r.expires = varint()
		l := uvarint()
		if b == nil || uint64(len(b)) < l || l > maxKey {
			return r, segfile.ErrBadRecord
		}
		r.key, r.body = b[:l], b[l:]
	case kindTake:
		r.attempts = uvarint()
		if b == nil || len(b) != 0 {
			return r, segfile.ErrBadRecord
		}
	case kindDone:
		if len(b) != 0 {
			return r, segfile.ErrBadRecord
		}
	default:
		return r, segfile.ErrBadRecord
	}
	return r, nil
}
