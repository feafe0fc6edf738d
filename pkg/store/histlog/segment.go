package histlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Record kinds.
const (
	kindEvent byte = 1 // an event of a user: seq, user, envelope
	kindHead  byte = 2 // a user's head, carried forward: seq, user
)

const (
	recordHeader = 8       // body length, CRC-32C of the body
	maxRecord    = 4 << 20 // larger bodies are corruption, not records
	segSuffix    = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one file of the log.
type segment struct {
	id   uint32
	f    *os.File
	size int64 // bytes of whole records; only the writer changes it after load

	// live counts index entries pointing into the segment. A segment other
	// than the active one with none left is deleted by Sweep.
	live atomic.Int64
}

func segmentName(id uint32) string { return fmt.Sprintf("%016x%s", id, segSuffix) }

// segmentIDs lists the segments in dir, oldest first.
func segmentIDs(dir string) ([]uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var ids []uint32
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 32)
		if err != nil || len(name) != 16 || id == 0 {
			return nil, fmt.Errorf("unexpected file %q", e.Name())
		}
		ids = append(ids, uint32(id))
	}
	slices.Sort(ids)
	return ids, nil
}

func openSegment(dir string, id uint32) (*segment, error) {
	f, err := os.OpenFile(filepath.Join(dir, segmentName(id)), os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	return &segment{id: id, f: f}, nil
}

// appendRecord appends one record to b.
func appendRecord(b []byte, kind byte, user string, seq uint64, envelope func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	b = append(b, kind)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(len(user)))
	b = append(b, user...)
	if envelope != nil {
		b = envelope(b)
	}
	body := b[start+recordHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// record is a decoded record body. User and envelope alias the body.
type record struct {
	kind     byte
	seq      uint64
	user     []byte
	envelope []byte
}

var errBadRecord = errors.New("malformed record")

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

// readRecord reads the record at off into buf (grown as needed) and
// returns its body.
func (seg *segment) readRecord(off uint32, buf []byte) ([]byte, []byte, error) {
	buf = buf[:cap(buf)]
	if len(buf) < 512 {
		buf = make([]byte, 512)
	}
	n, err := seg.f.ReadAt(buf, int64(off))
	if n < recordHeader {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, fmt.Errorf("segment %d offset %d: %w", seg.id, off, err)
	}
	size := int(binary.LittleEndian.Uint32(buf))
	if size > maxRecord {
		return nil, buf, fmt.Errorf("segment %d offset %d: %w", seg.id, off, errBadRecord)
	}
	if total := recordHeader + size; n < total {
		if cap(buf) < total {
			buf = make([]byte, total)
		}
		buf = buf[:total]
		if _, err := seg.f.ReadAt(buf[n:], int64(off)+int64(n)); err != nil {
			return nil, buf, fmt.Errorf("segment %d offset %d: %w", seg.id, off, err)
		}
	}
	body := buf[recordHeader : recordHeader+size]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(buf[4:]) {
		return nil, buf, fmt.Errorf("segment %d offset %d: checksum mismatch", seg.id, off)
	}
	return body, buf, nil
}
