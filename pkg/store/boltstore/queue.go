package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/store/queuelog"
)

// The embedded webhook queue lives in its own log (package queuelog); the
// file keeps what outlives the log, in two buckets:
//
//	queue-dedupe  key → expiry (8 bytes, Unix ns)
//	queue-dead    seq (8 bytes) → attempts (4) | 0 (8) | enqueued (8, Unix ns) | body
var (
	bucketDedupe = []byte("queue-dedupe")
	bucketDead   = []byte("queue-dead")
)

const queueHeader = 4 + 8 + 8

// QueueBacking is the file as the queue log's Backing.
type QueueBacking struct{ s *Store }

var _ queuelog.Backing = QueueBacking{}

// QueueBacking returns the store's dedupe keys and dead letters.
func (s *Store) QueueBacking() QueueBacking { return QueueBacking{s} }

// HasKey reports whether key is stored and unexpired at now.
func (b QueueBacking) HasKey(key string, now time.Time) (has bool, err error) {
	err = b.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDedupe).Get([]byte(key))
		has = len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now.UnixNano()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("boltstore dedupe key: %w", err)
	}
	return has, nil
}

// PutKeys stores dedupe keys, keeping the later expiry of a key stored
// twice. The batch is one transaction.
func (b QueueBacking) PutKeys(keys []queuelog.Key) error {
	err := b.s.db.Update(func(tx *bolt.Tx) error {
		d := tx.Bucket(bucketDedupe)
		for _, k := range keys {
			exp := uint64(k.Expires.UnixNano())
			if v := d.Get([]byte(k.Name)); len(v) == 8 && binary.BigEndian.Uint64(v) >= exp {
				continue
			}
			if err := d.Put([]byte(k.Name), binary.BigEndian.AppendUint64(nil, exp)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore dedupe keys: %w", err)
	}
	return nil
}

// PutDead keeps a dead item.
func (b QueueBacking) PutDead(it queuelog.DeadItem) error {
	err := b.s.db.Update(func(tx *bolt.Tx) error {
		d := tx.Bucket(bucketDead)
		seq, err := d.NextSequence()
		if err != nil {
			return err
		}
		return d.Put(seqKey(seq), queueRecord(it.Attempts, it.Enqueued, it.Body))
	})
	if err != nil {
		return fmt.Errorf("boltstore dead letter: %w", err)
	}
	return nil
}

// DeadCount is the number of dead items kept.
func (b QueueBacking) DeadCount() (n int64, err error) {
	err = b.s.db.View(func(tx *bolt.Tx) error {
		n = int64(tx.Bucket(bucketDead).Stats().KeyN)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltstore dead letters: %w", err)
	}
	return n, nil
}

func queueRecord(attempts int, enqueued time.Time, body []byte) []byte {
	rec := make([]byte, queueHeader+len(body))
	binary.BigEndian.PutUint32(rec, uint32(attempts))
	binary.BigEndian.PutUint64(rec[12:], uint64(enqueued.UnixNano()))
	copy(rec[queueHeader:], body)
	return rec
}

// sweepDedupe forgets expired dedupe keys.
func (s *Store) sweepDedupe(ctx context.Context, now time.Time) error {
	if err := s.sweepBucket(ctx, bucketDedupe, func(v []byte) bool {
		return len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano()
	}); err != nil {
		return fmt.Errorf("boltstore sweep dedupe: %w", err)
	}
	return nil
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}
