package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// sweepChunk is how many users (or idempotency keys) one Sweep transaction
// visits, so appends are never held up for long behind a sweep.
const sweepChunk = 256

// Append gives each event the next cursor of its user (Seq counting from 1
// without gaps, the store's epoch) and writes all of them in one
// transaction, trimming each user it touched to retention. Events of one
// user get increasing cursors in slice order. An event with a zero Created
// is stamped with the current time, since retention ages events by it.
//
// Either every event is written and has its Cursor set, or none is and
// every Cursor is zero.
func (s *Store) Append(ctx context.Context, events []*notification.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore append: %w", err)
	}
	now := s.now()
	size := 0
	for i, ev := range events {
		if err := checkEvent(ev); err != nil {
			return fmt.Errorf("boltstore append: event %d: %w", i, err)
		}
		if ev.Created.IsZero() {
			ev.Created = now
		}
		size += envelopeBound(ev)
	}
	// bbolt holds on to each value until the transaction commits, so every
	// envelope must stay intact until then: one buffer holds them all, and
	// their keys too.
	buf := make([]byte, 0, size)
	err := s.db.Update(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		var t touched
		for _, ev := range events {
			ub, err := t.bucket(hist, ev.User)
			if err != nil {
				return err
			}
			seq, err := ub.NextSequence()
			if err != nil {
				return fmt.Errorf("next sequence of %q: %w", ev.User, err)
			}
			start := len(buf)
			buf = binary.BigEndian.AppendUint64(buf, seq)
			key := buf[start:len(buf):len(buf)]
			buf = ev.AppendEnvelope(buf)
			if err := ub.Put(key, buf[start+8:len(buf):len(buf)]); err != nil {
				return fmt.Errorf("put event %d of %q: %w", seq, ev.User, err)
			}
			ev.Cursor = notification.Cursor{Epoch: s.epoch, Seq: seq}
		}
		return t.each(func(ub *bolt.Bucket) error {
			_, err := s.trim(ub, now)
			return err
		})
	})
	if err != nil {
		for _, ev := range events {
			ev.Cursor = notification.Cursor{}
		}
		return fmt.Errorf("boltstore append: %w", err)
	}
	return nil
}

// checkEvent rejects events that could not be stored, or that would be
// stored but not read back.
func checkEvent(ev *notification.Event) error {
	switch {
	case ev == nil:
		return errors.New("nil event")
	case ev.User == "":
		return errors.New("empty user")
	case len(ev.User) > bolt.MaxKeySize:
		return fmt.Errorf("user id of %d bytes is longer than %d", len(ev.User), bolt.MaxKeySize)
	case len(ev.Payload) < 2 || ev.Payload[0] != '{':
		return errors.New("payload is not a JSON object")
	}
	return nil
}

// envelopeBound is at least the length of ev's key and envelope.
func envelopeBound(ev *notification.Event) int {
	return 8 + 2 + 3*binary.MaxVarintLen64 + len(ev.ID) + len(ev.Tag) + len(ev.Payload)
}

// touched remembers the user buckets an Append wrote to. Most appends touch
// one user, so the map is made only when a second one shows up.
type touched struct {
	first     *bolt.Bucket
	firstUser string
	more      map[string]*bolt.Bucket
}

// bucket returns user's history bucket, creating it on first use.
func (t *touched) bucket(hist *bolt.Bucket, user string) (*bolt.Bucket, error) {
	if t.first != nil && user == t.firstUser {
		return t.first, nil
	}
	if ub := t.more[user]; ub != nil {
		return ub, nil
	}
	ub := hist.Bucket([]byte(user))
	if ub == nil {
		var err error
		if ub, err = hist.CreateBucket([]byte(user)); err != nil {
			return nil, fmt.Errorf("create history of %q: %w", user, err)
		}
	}
	switch {
	case t.first == nil:
		t.first, t.firstUser = ub, user
	case t.more == nil:
		t.more = map[string]*bolt.Bucket{user: ub}
	default:
		t.more[user] = ub
	}
	return ub, nil
}

func (t *touched) each(fn func(*bolt.Bucket) error) error {
	if t.first == nil {
		return nil
	}
	if err := fn(t.first); err != nil {
		return err
	}
	for _, ub := range t.more {
		if err := fn(ub); err != nil {
			return err
		}
	}
	return nil
}

// trim deletes a user's oldest events while they are beyond the count
// limit or older than the age limit, and reports how many it deleted. The
// bucket itself stays, even when emptied: its sequence is the user's head,
// and keeping it means a sequence is never handed out twice in an epoch.
func (s *Store) trim(ub *bolt.Bucket, now time.Time) (int, error) {
	var floor uint64 // events up to floor are beyond the count limit
	if head, limit := ub.Sequence(), uint64(s.ret.MaxCount); head > limit {
		floor = head - limit
	}
	cutoff := now.Add(-s.ret.MaxAge)
	c := ub.Cursor()
	n := 0
	// Deleting moves the cursor, so each step starts again from the front.
	for k, v := c.First(); k != nil; k, v = c.First() {
		if len(k) == 8 && binary.BigEndian.Uint64(k) > floor && fresh(v, cutoff) {
			return n, nil
		}
		if err := c.Delete(); err != nil {
			return n, fmt.Errorf("trim: %w", err)
		}
		n++
	}
	return n, nil
}

// fresh reports whether the envelope v was created at or after cutoff. An
// envelope whose time cannot be read counts as fresh: Range then reports
// it as malformed instead of it silently disappearing.
func fresh(v []byte, cutoff time.Time) bool {
	created, ok := notification.EnvelopeCreated(v)
	return !ok || !created.Before(cutoff)
}

// Range returns up to limit events of user after since, oldest first, and
// the user's head (zero when the user has no history), following the
// resume rules of broker.Broker.History:
//
//   - a zero since gives the newest limit events that are within retention;
//   - a non-zero since resumes only if it has the store's epoch, is not
//     past the head, and either is the head or its successor is still
//     retained (by count and by age); otherwise Range returns
//     broker.ErrReset, with the head.
//
// A limit below 1 counts as 1.
func (s *Store) Range(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	if err := ctx.Err(); err != nil {
		return nil, notification.Cursor{}, fmt.Errorf("boltstore range: %w", err)
	}
	if user == "" {
		return nil, notification.Cursor{}, errors.New("boltstore range: empty user")
	}
	limit = max(limit, 1)
	cutoff := s.now().Add(-s.ret.MaxAge)
	var events []*notification.Event
	var head notification.Cursor
	err := s.db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketHistory).Bucket([]byte(user))
		if ub == nil {
			if since.IsZero() {
				return nil
			}
			return broker.ErrReset
		}
		if ub.Sequence() > 0 {
			head = notification.Cursor{Epoch: s.epoch, Seq: ub.Sequence()}
		}
		var err error
		if since.IsZero() {
			events, err = s.newest(ub, user, limit, cutoff)
		} else {
			events, err = s.after(ub, user, since, limit, cutoff)
		}
		return err
	})
	if errors.Is(err, broker.ErrReset) {
		return nil, head, broker.ErrReset
	}
	if err != nil {
		return nil, head, fmt.Errorf("boltstore range %q: %w", user, err)
	}
	return events, head, nil
}

// newest reads the newest limit fresh events, walking back from the head
// and stopping at the first one past the age limit.
func (s *Store) newest(ub *bolt.Bucket, user string, limit int, cutoff time.Time) ([]*notification.Event, error) {
	var events []*notification.Event
	c := ub.Cursor()
	for k, v := c.Last(); k != nil && len(events) < limit && fresh(v, cutoff); k, v = c.Prev() {
		ev, err := s.decode(user, k, v)
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	slices.Reverse(events)
	return events, nil
}

// after applies the resume rules to since and reads up to limit events
// after it.
func (s *Store) after(ub *bolt.Bucket, user string, since notification.Cursor, limit int, cutoff time.Time) ([]*notification.Event, error) {
	head := ub.Sequence()
	if since.Epoch != s.epoch || since.Seq > head {
		return nil, broker.ErrReset
	}
	if since.Seq == head {
		return nil, nil
	}
	next := seqKey(since.Seq + 1)
	c := ub.Cursor()
	k, v := c.Seek(next)
	if !bytes.Equal(k, next) || !fresh(v, cutoff) {
		return nil, broker.ErrReset
	}
	events := make([]*notification.Event, 0, min(uint64(limit), head-since.Seq, uint64(s.ret.MaxCount)))
	for ; k != nil && len(events) < limit; k, v = c.Next() {
		ev, err := s.decode(user, k, v)
		if err != nil {
			return nil, err
		}
		events = append(events, ev)
	}
	return events, nil
}

func (s *Store) decode(user string, k, v []byte) (*notification.Event, error) {
	if len(k) != 8 {
		return nil, fmt.Errorf("malformed history key %x", k)
	}
	seq := binary.BigEndian.Uint64(k)
	ev, err := notification.UnmarshalEnvelope(user, notification.Cursor{Epoch: s.epoch, Seq: seq}, v)
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", seq, err)
	}
	return ev, nil
}

// Sweep trims every user's history to retention and deletes expired
// idempotency keys. Appends trim the users they write to; Sweep is for the
// users who receive nothing new, and is meant to run periodically. It
// works in short transactions, so appends interleave with it, and stops
// early when ctx ends.
func (s *Store) Sweep(ctx context.Context) error {
	now := s.now()
	var last []byte // the last user visited
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("boltstore sweep: %w", err)
		}
		var done bool
		err := s.db.Update(func(tx *bolt.Tx) error {
			hist := tx.Bucket(bucketHistory)
			c := hist.Cursor()
			k, v := c.First()
			if last != nil {
				k, v = c.Seek(last)
				if bytes.Equal(k, last) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil && n < sweepChunk; k, v = c.Next() {
				last = append(last[:0], k...)
				if v != nil {
					continue // not a bucket
				}
				// Trimming changes the user's bucket, never the keys of
				// hist, so the cursor over hist stays valid.
				if _, err := s.trim(hist.Bucket(k), now); err != nil {
					return fmt.Errorf("user %q: %w", k, err)
				}
				n++
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return fmt.Errorf("boltstore sweep: %w", err)
		}
		if done {
			break
		}
	}
	if err := s.sweepIdempotency(ctx, now); err != nil {
		return err
	}
	return s.sweepDedupe(ctx, now)
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}
