package histlog

import (
	"errors"
	"fmt"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// replay adds the records of seg to the index. A record that cannot be
// read ends the segment: in the newest segment that is a write the crash
// interrupted, and the file is cut back to the last whole record; in an
// older one it is corruption, and an error.
func (s *Store) replay(seg *segment, newest bool) error {
	end, err := segfile.Scan(seg.f, func(off int64, body []byte) error {
		rec, err := parseRecord(body)
		if err != nil {
			return err
		}
		if rec.kind == kindEvent {
			if _, err := notification.UnmarshalEnvelope(string(rec.user), notification.Cursor{}, rec.envelope); err != nil {
				return fmt.Errorf("%w: %w", errBadRecord, err)
			}
		}
		s.restore(seg, rec, uint32(off))
		return nil
	})
	if err != nil {
		if !newest || !errors.Is(err, errBadRecord) {
			return fmt.Errorf("segment %d: %w", seg.id, err)
		}
		if err := segfile.CutTail(seg.f, end); err != nil {
			return fmt.Errorf("segment %d: %w", seg.id, err)
		}
	}
	seg.size = end
	seg.alloc, err = segfile.Size(seg.f)
	if err != nil {
		return fmt.Errorf("segment %d: %w", seg.id, err)
	}
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
