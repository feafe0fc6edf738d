package histlog

import (
	"encoding/binary"
	"os"
	"sync/atomic"

	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// Record kinds.
const (
	kindEvent byte = 1 // an event of a user: seq, user, envelope
	kindHead  byte = 2 // a user's head, carried forward: seq, user
)

// maxRecord bounds a record body.
const maxRecord = segfile.MaxBody

// segment is one file of the log.
type segment struct {
	id    uint32
	f     *os.File
	size  int64 // bytes of whole records; only the writer changes it after load
	alloc int64 // bytes written, records or zeroes ahead of them (segfile.Write)

	// live counts index entries pointing into the segment. A segment other
	// than the active one with none left is deleted by Sweep.
	live atomic.Int64
}

// appendRecord appends one record to b.
func appendRecord(b []byte, kind byte, user string, seq uint64, envelope func([]byte) []byte) []byte {
	return segfile.Append(b, func(b []byte) []byte {
		b = append(b, kind)
		b = binary.AppendUvarint(b, seq)
		b = binary.AppendUvarint(b, uint64(len(user)))
		b = append(b, user...)
		if envelope != nil {
			b = envelope(b)
		}
		return b
	})
}

// record is a decoded record body. User and envelope alias the body.
type record struct {
	kind     byte
	seq      uint64
	user     []byte
	envelope []byte
}

var errBadRecord = segfile.ErrBadRecord

func parseRecord(body []byte) (record, error) {
	var r record
	if len(body) < 1 {
		return r, errBadRecord
	}
	r.kind = body[0]
	b := body[1:]
	seq, n := binary.Uvarint(b)
	if n <= 0 || seq == 0 {
		return r, errBadRecord
	}
	r.seq, b = seq, b[n:]
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l || l == 0 {
		return r, errBadRecord
	}
	r.user, b = b[n:n+int(l)], b[n+int(l):]
	switch r.kind {
	case kindEvent:
		if len(b) == 0 {
			return r, errBadRecord
		}
		r.envelope = b
	case kindHead:
		if len(b) != 0 {
			return r, errBadRecord
		}
	default:
		return r, errBadRecord
	}
	return r, nil
}
