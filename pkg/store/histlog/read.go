package histlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// readBufs holds record buffers of Range calls.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Range returns up to limit events of user after since, oldest first, and
// the user's head (zero when the user has no history), following the
// resume rules of broker.Broker.History:
//
//   - a zero since gives the newest limit events that are within retention;
//   - a non-zero since resumes only if it has the log's epoch, is not past
//     the head, and either is the head or its successor is still retained
//     (by count and by age); otherwise Range returns broker.ErrReset, with
//     the head.
//
// A limit below 1 counts as 1.
func (s *Store) Range(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	if err := ctx.Err(); err != nil {
		return nil, notification.Cursor{}, fmt.Errorf("histlog range: %w", err)
	}
	if user == "" {
		return nil, notification.Cursor{}, errors.New("histlog range: empty user")
	}
	limit = max(limit, 1)
	cutoff := s.now().Add(-s.opts.Retention.MaxAge)

	// Copy what is needed out of the index, then read without its lock.
	sh := s.index.shard(user)
	sh.mu.RLock()
	var head notification.Cursor
	var first uint64
	var locs []loc
	u := sh.lookup(user)
	if u != nil && u.head > 0 {
		head = notification.Cursor{Epoch: s.epoch, Seq: u.head}
		first = u.first()
	}
	reset := false
	switch {
	case since.IsZero():
		if u != nil {
			locs = slices.Clone(u.locs[max(0, len(u.locs)-limit):])
			first = u.head - uint64(len(locs)) + 1
		}
	case head.IsZero() || since.Epoch != s.epoch || since.Seq > head.Seq || since.Seq+1 < first:
		reset = true
	case since.Seq == head.Seq:
	default:
		i := since.Seq + 1 - first
		locs = slices.Clone(u.locs[i:min(uint64(len(u.locs)), i+uint64(limit))])
		first = since.Seq + 1
	}
	sh.mu.RUnlock()
	if reset {
		return nil, head, broker.ErrReset
	}
	if len(locs) == 0 {
		return nil, head, nil
	}

	s.segMu.RLock()
	defer s.segMu.RUnlock()
	if s.closed {
		return nil, head, fmt.Errorf("histlog range: %w", ErrClosed)
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	read := func(i int) (*notification.Event, error) {
		ev, buf, err := s.readEvent(user, first+uint64(i), locs[i], *bp)
		*bp = buf[:0]
		return ev, err
	}
	var events []*notification.Event
	if since.IsZero() {
		// The newest fresh events: walk back from the head, stopping at the
		// first one past the age limit.
		for i := len(locs) - 1; i >= 0; i-- {
			ev, err := read(i)
			if errors.Is(err, errGone) {
				break // trimmed and deleted while this call read
			}
			if err != nil {
				return nil, head, fmt.Errorf("histlog range %q: %w", user, err)
			}
			if ev.Created.Before(cutoff) {
				break
			}
			events = append(events, ev)
		}
		slices.Reverse(events)
		return events, head, nil
	}
	events = make([]*notification.Event, 0, len(locs))
	for i := range locs {
		ev, err := read(i)
		if errors.Is(err, errGone) {
			if i == 0 {
				return nil, head, broker.ErrReset
			}
			break
		}
		if err != nil {
			return nil, head, fmt.Errorf("histlog range %q: %w", user, err)
		}
		if i == 0 && ev.Created.Before(cutoff) {
			return nil, head, broker.ErrReset
		}
		events = append(events, ev)
	}
	return events, head, nil
}

// errGone is a record whose segment was deleted after its location was
// read from the index.
var errGone = errors.New("segment deleted")

// readEvent reads and decodes the event at l, checking that the record is
// the one the index says. segMu is read-locked by the caller.
func (s *Store) readEvent(user string, seq uint64, l loc, buf []byte) (*notification.Event, []byte, error) {
	seg := s.segs[l.seg]
	if seg == nil {
		return nil, buf, errGone
	}
	body, buf, err := segfile.ReadAt(seg.f, int64(l.off), buf)
	if err != nil {
		return nil, buf, fmt.Errorf("segment %d: %w", seg.id, err)
	}
	r, err := parseRecord(body)
	if err != nil || r.kind != kindEvent || r.seq != seq || string(r.user) != user {
		return nil, buf, fmt.Errorf("segment %d offset %d: record is not event %d of the user", l.seg, l.off, seq)
	}
	ev, err := notification.UnmarshalEnvelope(user, notification.Cursor{Epoch: s.epoch, Seq: seq}, r.envelope)
	if err != nil {
		return nil, buf, fmt.Errorf("event %d: %w", seq, err)
	}
	return ev, buf, nil
}
