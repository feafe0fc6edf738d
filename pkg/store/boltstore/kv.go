package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Get returns a copy of the value stored under key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore get: %w", err)
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("boltstore get: %w", err)
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		// A cursor, not Get: Get cannot tell an empty value from none.
		k, v := tx.Bucket(bucketKV).Cursor().Seek([]byte(key))
		if !bytes.Equal(k, []byte(key)) {
			return ErrNotFound
		}
		out = append([]byte{}, v...)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore get %q: %w", key, err)
	}
	return out, nil
}

// Put stores value under key, replacing any value there.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore put: %w", err)
	}
	if err := checkKey(key); err != nil {
		return fmt.Errorf("boltstore put: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKV).Put([]byte(key), value) }); err != nil {
		return fmt.Errorf("boltstore put %q: %w", key, err)
	}
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore delete: %w", err)
	}
	if err := checkKey(key); err != nil {
		return fmt.Errorf("boltstore delete: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKV).Delete([]byte(key)) }); err != nil {
		return fmt.Errorf("boltstore delete %q: %w", key, err)
	}
	return nil
}

// PutIfAbsent stores value under key unless key has a value, and returns
// the value stored now (value, or the one that was there).
func (s *Store) PutIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("boltstore put if absent: %w", err)
	}
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		if k, v := b.Cursor().Seek([]byte(key)); bytes.Equal(k, []byte(key)) {
			out = append([]byte{}, v...)
			return nil
		}
		out = value
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore put if absent %q: %w", key, err)
	}
	return out, nil
}
