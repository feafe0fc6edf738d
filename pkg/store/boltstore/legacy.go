package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/notification"
)

// Histories were kept in this file before they moved to the history log
// (package histlog): in the history bucket, one sub-bucket per user with
// seq (8 bytes, big endian) → event envelope, the sub-bucket's sequence
// being the user's head, and cursors of the file's epoch. What is still
// there is read once by EachHistory, moved, and dropped by DropHistory.

// sweepChunk is how many keys one Sweep transaction visits, so other
// writers are never held up for long behind a sweep.
const sweepChunk = 256

// Sweep deletes expired idempotency keys and webhook dedupe keys. It works
// in short transactions and stops early when ctx ends.
func (s *Store) Sweep(ctx context.Context) error {
	now := s.now()
	if err := s.sweepIdempotency(ctx, now); err != nil {
		return err
	}
	return s.sweepDedupe(ctx, now)
}

// HasHistory reports whether any user history is stored in the file.
func (s *Store) HasHistory() (bool, error) {
	var has bool
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketHistory).Cursor().First()
		has = k != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("boltstore has history: %w", err)
	}
	return has, nil
}

// EachHistory calls fn with every user's head sequence and stored events,
// oldest first, in one read transaction.
func (s *Store) EachHistory(ctx context.Context, fn func(user string, head uint64, events []*notification.Event) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		return hist.ForEachBucket(func(k []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			user := string(k)
			ub := hist.Bucket(k)
			var events []*notification.Event
			err := ub.ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return fmt.Errorf("malformed history key %x", k)
				}
				seq := binary.BigEndian.Uint64(k)
				ev, err := notification.UnmarshalEnvelope(user, notification.Cursor{Epoch: s.epoch, Seq: seq}, v)
				if err != nil {
					return fmt.Errorf("event %d: %w", seq, err)
				}
				events = append(events, ev)
				return nil
			})
			if err != nil {
				return fmt.Errorf("user %q: %w", user, err)
			}
			return fn(user, ub.Sequence(), events)
		})
	})
	if err != nil {
		return fmt.Errorf("boltstore each history: %w", err)
	}
	return nil
}

// DropHistory deletes every user history, once they live elsewhere.
func (s *Store) DropHistory() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketHistory); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketHistory)
		return err
	})
	if err != nil {
		return fmt.Errorf("boltstore drop history: %w", err)
	}
	return nil
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}
