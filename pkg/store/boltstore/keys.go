package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Idempotency records are [expiry unix nanos][state][result].
const (
	idemPending byte = 0
	idemDone    byte = 1
)

// Reserve claims key for ttl. fresh reports that the caller owns it now;
// otherwise prior holds the stored result, or nil while another request
// with the key is still in progress.
func (s *Store) Reserve(_ context.Context, key string, ttl time.Duration) (prior []byte, fresh bool, err error) {
	now := s.now()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdem)
		if v := b.Get([]byte(key)); len(v) >= 9 && int64(binary.BigEndian.Uint64(v)) > now.UnixNano() {
			if v[8] == idemDone {
				prior = append([]byte{}, v[9:]...)
			}
			return nil
		}
		fresh = true
		return b.Put([]byte(key), idemRecord(now.Add(ttl), idemPending, nil))
	})
	if err != nil {
		return nil, false, fmt.Errorf("boltstore reserve: %w", err)
	}
	return prior, fresh, nil
}

// Complete stores the result for key, kept for ttl.
func (s *Store) Complete(_ context.Context, key string, result []byte, ttl time.Duration) error {
	rec := idemRecord(s.now().Add(ttl), idemDone, result)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIdem).Put([]byte(key), rec) }); err != nil {
		return fmt.Errorf("boltstore complete: %w", err)
	}
	return nil
}

// Release forgets key, so a failed request can be retried.
func (s *Store) Release(_ context.Context, key string) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIdem).Delete([]byte(key)) }); err != nil {
		return fmt.Errorf("boltstore release: %w", err)
	}
	return nil
}

func idemRecord(expiry time.Time, state byte, result []byte) []byte {
	rec := make([]byte, 9, 9+len(result))
	binary.BigEndian.PutUint64(rec, uint64(expiry.UnixNano()))
	rec[8] = state
	return append(rec, result...)
}

func (s *Store) sweepIdempotency(now time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketIdem).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) < 9 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore sweep idempotency: %w", err)
	}
	return nil
}

// Get returns the value stored under key, or ErrNotFound.
func (s *Store) Get(_ context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKV).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

// Put stores value under key.
func (s *Store) Put(_ context.Context, key string, value []byte) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKV).Put([]byte(key), value) }); err != nil {
		return fmt.Errorf("boltstore put: %w", err)
	}
	return nil
}
