package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/notification"
)

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
				ev, err := s.decode(user, k, v)
				if err != nil {
					return err
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
