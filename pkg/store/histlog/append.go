package histlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// maxUser bounds user ids, as the other stores do.
const maxUser = 32 << 10

// pendingEvent is one event of the append in progress.
type pendingEvent struct {
	u   *userLog
	ev  *notification.Event
	seq uint64
	off int // of its record in the write buffer
}

// Append gives each event the next cursor of its user (Seq counting from 1
// without gaps, the log's epoch) and writes all of them in one write and
// one data sync, trimming each user it touched to the count limit. Events
// of one user get increasing cursors in slice order. An event with a zero
// Created is stamped with the current time, since retention ages events by
// it.
//
// Either every event is written and has its Cursor set, or none is and
// every Cursor is zero.
func (s *Store) Append(ctx context.Context, events []*notification.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("histlog append: %w", err)
	}
	now := s.now()
	for i, ev := range events {
		if err := checkEvent(ev); err != nil {
			return fmt.Errorf("histlog append: event %d: %w", i, err)
		}
		if ev.Created.IsZero() {
			ev.Created = now
		}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("histlog append: %w", err)
	}
	batch := s.batch[:0]
	buf := s.wbuf[:0]
	for _, ev := range events {
		u := s.index.getOrCreate(ev.User)
		u.pending++
		seq := u.head + u.pending
		batch = append(batch, pendingEvent{u: u, ev: ev, seq: seq, off: len(buf)})
		buf = appendRecord(buf, kindEvent, ev.User, seq, ev.AppendEnvelope)
	}
	s.batch, s.wbuf = batch, buf
	base, err := s.write(buf)
	if err != nil {
		for _, p := range batch {
			p.u.pending = 0
		}
		clear(batch)
		return fmt.Errorf("histlog append: %w", err)
	}
	seg := s.active
	seg.live.Add(int64(len(batch)))
	maxCount := s.opts.Retention.MaxCount
	for _, p := range batch {
		p.u.pending = 0
		l := loc{seg: seg.id, off: uint32(base + int64(p.off)), created: seconds(p.ev.Created)}
		sh := s.index.shard(p.ev.User)
		sh.mu.Lock()
		p.u.locs = append(p.u.locs, l)
		p.u.head = p.seq
		p.u.headSeg = seg.id
		if over := len(p.u.locs) - maxCount; over > 0 {
			p.u.trimFront(over, s.dropLoc)
		}
		sh.mu.Unlock()
		p.ev.Cursor = notification.Cursor{Epoch: s.epoch, Seq: p.seq}
	}
	clear(batch) // drop references to the callers' events
	if cap(s.wbuf) > 16<<20 {
		s.wbuf = nil // a huge batch does not pin its buffer
	}
	return nil
}

// writable reports why no write can be made, if so. The writer lock is held.
func (s *Store) writable() error {
	switch {
	case s.active == nil:
		return ErrClosed
	case s.broken != nil:
		return s.broken
	}
	return nil
}

// write appends buf to the active segment (first starting a new one if it
// would grow past the segment size) and syncs it, returning the offset it
// was written at. On failure the segment is cut back to its previous end;
// if even that fails, the log refuses further writes.
func (s *Store) write(buf []byte) (int64, error) {
	if s.active.size > 0 && s.active.size+int64(len(buf)) > s.opts.SegmentSize {
		if err := s.roll(s.active.id + 1); err != nil {
			return 0, err
		}
	}
	seg := s.active
	base := seg.size
	if base+int64(len(buf)) > math.MaxUint32 {
		return 0, fmt.Errorf("batch of %d bytes does not fit a segment", len(buf))
	}
	if err := segfile.Write(seg.f, base, buf, &seg.alloc); err != nil {
		if terr := seg.f.Truncate(base); terr != nil {
			s.broken = fmt.Errorf("histlog: segment %d left with a partial write: %w", seg.id, errors.Join(err, terr))
		}
		seg.alloc = base
		return 0, fmt.Errorf("write segment %d: %w", seg.id, err)
	}
	seg.size = base + int64(len(buf))
	return base, nil
}

// roll seals the active segment, if any, and starts segment id as the
// active one.
func (s *Store) roll(id uint32) error {
	if s.active != nil {
		if err := segfile.Seal(s.active.f, s.active.size); err != nil {
			return fmt.Errorf("segment %d: %w", s.active.id, err)
		}
		s.active.alloc = s.active.size
	}
	f, err := segfile.Create(s.dir, id)
	if err != nil {
		return err
	}
	seg := &segment{id: id, f: f}
	s.segMu.Lock()
	s.segs[id] = seg
	s.segMu.Unlock()
	s.active = seg
	return nil
}

// dropLoc accounts for an index entry that was trimmed. Called with the
// writer lock held, which is what keeps segs from changing under it.
func (s *Store) dropLoc(l loc) {
	if seg := s.segs[l.seg]; seg != nil {
		seg.live.Add(-1)
	}
}

// seconds is t in whole Unix seconds, rounded down and clamped to what a
// uint32 holds.
func seconds(t time.Time) uint32 {
	return uint32(max(0, min(t.Unix(), math.MaxUint32)))
}

// checkEvent rejects events that could not be stored, or that would be
// stored but not read back.
func checkEvent(ev *notification.Event) error {
	switch {
	case ev == nil:
		return errors.New("nil event")
	case ev.User == "":
		return errors.New("empty user")
	case len(ev.User) > maxUser:
		return fmt.Errorf("user id of %d bytes is longer than %d", len(ev.User), maxUser)
	case !utf8.ValidString(ev.User):
		return errors.New("user id is not UTF-8")
	case len(ev.Payload) < 2 || ev.Payload[0] != '{':
		return errors.New("payload is not a JSON object")
	case len(ev.User)+len(ev.ID)+len(ev.Tag)+len(ev.Payload) > maxRecord-64:
		return fmt.Errorf("event of %d bytes is larger than a record", len(ev.Payload))
	}
	return nil
}
