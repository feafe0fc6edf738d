package histlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/heraldhq/herald/pkg/notification"
)

// replay adds the records of seg to the index. A record that cannot be
// read ends the segment: in the newest segment that is a write the crash
// interrupted, and the file is cut back to the last whole record; in an
// older one it is corruption, and an error.
func (s *Store) replay(seg *segment, newest bool) error {
	r := bufio.NewReaderSize(io.NewSectionReader(seg.f, 0, 1<<62), 1<<20)
	var off int64
	var hdr [recordHeader]byte
	var body []byte
	for {
		_, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			break
		}
		var bad error
		size := int64(binary.LittleEndian.Uint32(hdr[:]))
		switch {
		case err != nil:
			bad = fmt.Errorf("header: %w", err)
		case size == 0 || size > maxRecord:
			bad = fmt.Errorf("record length %d", size)
		}
		if bad == nil {
			if int64(cap(body)) < size {
				body = make([]byte, size)
			}
			body = body[:size]
			if _, err := io.ReadFull(r, body); err != nil {
				bad = fmt.Errorf("body: %w", err)
			} else if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
				bad = errors.New("checksum mismatch")
			}
		}
		var rec record
		if bad == nil {
			rec, bad = parseRecord(body)
		}
		if bad == nil && rec.kind == kindEvent {
			if _, err := notification.UnmarshalEnvelope(string(rec.user), notification.Cursor{}, rec.envelope); err != nil {
				bad = err
			}
		}
		if bad != nil {
			if !newest {
				return fmt.Errorf("segment %d offset %d: %w", seg.id, off, bad)
			}
			if err := seg.f.Truncate(off); err != nil {
				return fmt.Errorf("cut torn tail of segment %d: %w", seg.id, err)
			}
			if err := fdatasync(seg.f); err != nil {
				return fmt.Errorf("cut torn tail of segment %d: %w", seg.id, err)
			}
			break
		}
		s.restore(seg, rec, uint32(off))
		off += recordHeader + size
		if off > MaxSegmentSize*4 {
			return fmt.Errorf("segment %d is larger than any segment written", seg.id)
		}
	}
	seg.size = off
	return nil
}

// restore applies one record read back from seg to the index.
func (s *Store) restore(seg *segment, rec record, off uint32) {
	u := s.index.getOrCreate(string(rec.user))
	if rec.seq <= u.head {
		return // already superseded
	}
	if rec.seq != u.head+1 || rec.kind == kindHead {
		// The events before this one are gone: their segments were
		// deleted once retention had trimmed them.
		u.trimFront(len(u.locs), s.dropLoc)
	}
	u.head, u.headSeg = rec.seq, seg.id
	if rec.kind == kindHead {
		return
	}
	created, _ := notification.EnvelopeCreated(rec.envelope)
	u.locs = append(u.locs, loc{seg: seg.id, off: off, created: seconds(created)})
	seg.live.Add(1)
	if over := len(u.locs) - s.opts.Retention.MaxCount; over > 0 {
		u.trimFront(over, s.dropLoc)
	}
}
