// Package boltstore is Herald's embedded, on-disk store (bbolt): per-user
// notification histories with cursors and retention, idempotency keys, and
// a small key/value space for settings. It is the default back-end of a
// single node and survives restarts.
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

var (
	bucketMeta    = []byte("meta")
	bucketHistory = []byte("history")
	bucketIdem    = []byte("idempotency")
	bucketKV      = []byte("kv")
	keyEpoch      = []byte("epoch")
)

// Options tune a Store.
type Options struct {
	Retention   broker.Retention
	LockTimeout time.Duration // how long Open waits for another process's lock (default 2s)
}

// Store is an open embedded store.
type Store struct {
	db    *bolt.DB
	epoch string
	ret   broker.Retention
	now   func() time.Time
}

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("boltstore: not found")

// Open opens (creating if needed) the store file at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opts.LockTimeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("boltstore open %s: locked by another process", path)
		}
		return nil, fmt.Errorf("boltstore open %s: %w", path, err)
	}
	s := &Store{db: db, ret: opts.Retention.WithDefaults(), now: time.Now}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketHistory, bucketIdem, bucketKV} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if e := meta.Get(keyEpoch); e != nil {
			s.epoch = string(e)
			return nil
		}
		s.epoch = notification.NewEpoch()
		return meta.Put(keyEpoch, []byte(s.epoch))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore init: %w", err)
	}
	return s, nil
}

// Epoch returns the store's history epoch.
func (s *Store) Epoch() string { return s.epoch }

// Close closes the database file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore close: %w", err)
	}
	return nil
}

// Ready reports whether the store is open.
func (s *Store) Ready(context.Context) error {
	return s.db.View(func(*bolt.Tx) error { return nil })
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Append assigns each event the next cursor of its user and writes all of
// them in one transaction, trimming the users' histories to retention.
func (s *Store) Append(_ context.Context, events []*notification.Event) error {
	now := s.now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		for _, ev := range events {
			ub, err := hist.CreateBucketIfNotExists([]byte(ev.User))
			if err != nil {
				return err
			}
			seq, err := ub.NextSequence()
			if err != nil {
				return err
			}
			// bbolt keeps the value slice until the transaction ends, so
			// each event needs its own.
			if err := ub.Put(seqKey(seq), ev.MarshalEnvelope()); err != nil {
				return err
			}
			ev.Cursor = notification.Cursor{Epoch: s.epoch, Seq: seq}
			if err := s.trim(ub, seq, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, ev := range events {
			ev.Cursor = notification.Cursor{}
		}
		return fmt.Errorf("boltstore append: %w", err)
	}
	return nil
}

// trim drops a user's oldest events beyond the count and age limits.
func (s *Store) trim(ub *bolt.Bucket, head uint64, now time.Time) error {
	var floor uint64
	if head > uint64(s.ret.MaxCount) {
		floor = head - uint64(s.ret.MaxCount)
	}
	cutoff := now.Add(-s.ret.MaxAge)
	c := ub.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		if binary.BigEndian.Uint64(k) > floor {
			created, ok := notification.EnvelopeCreated(v)
			if ok && !created.Before(cutoff) {
				return nil
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Sweep trims every user's history by age, for users who receive nothing
// new. Histories are emptied but kept, so sequences never restart within
// an epoch.
func (s *Store) Sweep(ctx context.Context) error {
	now := s.now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		return hist.ForEachBucket(func(name []byte) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			ub := hist.Bucket(name)
			return s.trim(ub, ub.Sequence(), now)
		})
	})
	if err != nil {
		return fmt.Errorf("boltstore sweep: %w", err)
	}
	return s.sweepIdempotency(now)
}
