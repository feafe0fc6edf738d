package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// Range returns up to limit events of user after since, oldest first, and
// the user's head, with the resume rules of broker.Broker.History.
func (s *Store) Range(_ context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	if limit <= 0 {
		limit = 1
	}
	cutoff := s.now().Add(-s.ret.MaxAge)
	var out []*notification.Event
	var head notification.Cursor
	err := s.db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketHistory).Bucket([]byte(user))
		var headSeq uint64
		if ub != nil {
			headSeq = ub.Sequence()
		}
		if headSeq > 0 {
			head = notification.Cursor{Epoch: s.epoch, Seq: headSeq}
		}
		fresh := func(v []byte) bool {
			created, ok := notification.EnvelopeCreated(v)
			return ok && !created.Before(cutoff)
		}
		decode := func(k, v []byte) error {
			ev, err := notification.UnmarshalEnvelope(user, notification.Cursor{Epoch: s.epoch, Seq: binary.BigEndian.Uint64(k)}, v)
			if err != nil {
				return err
			}
			out = append(out, ev)
			return nil
		}
		if since.IsZero() {
			if ub == nil {
				return nil
			}
			c := ub.Cursor()
			for k, v := c.Last(); k != nil && len(out) < limit && fresh(v); k, v = c.Prev() {
				if err := decode(k, v); err != nil {
					return err
				}
			}
			slices.Reverse(out)
			return nil
		}
		if since.Epoch != s.epoch || since.Seq > headSeq {
			return broker.ErrReset
		}
		if since.Seq == headSeq {
			return nil
		}
		c := ub.Cursor()
		k, v := c.Seek(seqKey(since.Seq + 1))
		if k == nil || binary.BigEndian.Uint64(k) != since.Seq+1 || !fresh(v) {
			return broker.ErrReset
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			if err := decode(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err == broker.ErrReset {
		return nil, head, err
	}
	if err != nil {
		return nil, head, fmt.Errorf("boltstore range: %w", err)
	}
	return out, head, nil
}
