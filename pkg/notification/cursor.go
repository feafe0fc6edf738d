package notification

import (
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
)

// Cursor is a position in one user's history: Seq counts that user's events
// from 1 without gaps, and Epoch names the history the count belongs to. A
// history that is lost and started again gets a new epoch, so a cursor from
// the old one is recognised instead of silently pointing into the new one.
type Cursor struct {
	Epoch string
	Seq   uint64
}

// ErrBadCursor reports a cursor string that does not parse.
var ErrBadCursor = errors.New("malformed cursor")

// IsZero reports whether c is the empty cursor (no position).
func (c Cursor) IsZero() bool { return c.Epoch == "" && c.Seq == 0 }

// String renders c as "<epoch>-<seq>", the form clients see.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return c.Epoch + "-" + strconv.FormatUint(c.Seq, 10)
}

// AppendTo appends c's string form to b without allocating.
func (c Cursor) AppendTo(b []byte) []byte {
	if c.IsZero() {
		return b
	}
	b = append(b, c.Epoch...)
	b = append(b, '-')
	return strconv.AppendUint(b, c.Seq, 10)
}

// ParseCursor parses the string form of a cursor.
func ParseCursor(s string) (Cursor, error) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 || i == len(s)-1 || len(s) > 128 {
		return Cursor{}, ErrBadCursor
	}
	seq, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	epoch := s[:i]
	for j := 0; j < len(epoch); j++ {
		ch := epoch[j]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return Cursor{}, ErrBadCursor
		}
	}
	return Cursor{Epoch: epoch, Seq: seq}, nil
}

// NewEpoch returns a random 10-character alphanumeric history epoch.
func NewEpoch() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
