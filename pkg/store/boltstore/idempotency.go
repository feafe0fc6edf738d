package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// An idempotency record is the expiry (8 bytes, Unix nanoseconds, big
// endian), a state byte, and then the holder of a pending claim or the
// stored result of a completed request.
const (
	idemPending byte = 'p'
	idemDone    byte = 'd'
	idemHeader       = 9
)

// Reserve claims key for ttl. With fresh true the caller owns the key and
// must Complete or Release it. Otherwise prior is the stored result of a
// completed request (non-nil, though empty if the result was), or nil while
// another request with the key is still in progress. Claim and lookup are
// one transaction, so exactly one of concurrent callers gets fresh. An
// expired key counts as absent.
func (s *Store) Reserve(ctx context.Context, key, holder string, ttl time.Duration) (prior []byte, fresh bool, err error) {
	if err := s.checkIdem(ctx, key, ttl); err != nil {
		return nil, false, fmt.Errorf("boltstore reserve: %w", err)
	}
	now := s.now()
	// Batch: concurrent reservations share a commit. The function may run
	// again, so it starts from a clean answer.
	err = s.db.Batch(func(tx *bolt.Tx) error {
		prior, fresh = nil, false
		b := tx.Bucket(bucketIdem)
		if state, result, ok := liveRecord(b.Get([]byte(key)), now); ok {
			if state == idemDone {
				prior = append([]byte{}, result...)
			}
			return nil
		}
		fresh = true
		return b.Put([]byte(key), idemRecord(now.Add(ttl), idemPending, []byte(holder)))
	})
	if err != nil {
		return nil, false, fmt.Errorf("boltstore reserve: %w", err)
	}
	return prior, fresh, nil
}

// Complete stores the result of the request that reserved key; Reserve
// returns it for ttl.
func (s *Store) Complete(ctx context.Context, key string, result []byte, ttl time.Duration) error {
	if err := s.checkIdem(ctx, key, ttl); err != nil {
		return fmt.Errorf("boltstore complete: %w", err)
	}
	rec := idemRecord(s.now().Add(ttl), idemDone, result)
	err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdem).Put([]byte(key), rec)
	})
	if err != nil {
		return fmt.Errorf("boltstore complete: %w", err)
	}
	return nil
}

// Release forgets key if holder's claim is on it, so a request that
// failed can be retried with it.
func (s *Store) Release(ctx context.Context, key, holder string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore release: %w", err)
	}
	if err := checkKey(key); err != nil {
		return fmt.Errorf("boltstore release: %w", err)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdem)
		state, got, ok := liveRecord(b.Get([]byte(key)), s.now())
		if ok && (state != idemPending || string(got) != holder) {
			return nil // completed, or another holder's
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("boltstore release: %w", err)
	}
	return nil
}

func (s *Store) checkIdem(ctx context.Context, key string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("ttl %s is not positive", ttl)
	}
	return checkKey(key)
}

func idemRecord(expiry time.Time, state byte, result []byte) []byte {
	rec := make([]byte, idemHeader, idemHeader+len(result))
	binary.BigEndian.PutUint64(rec, uint64(expiry.UnixNano()))
	rec[8] = state
	return append(rec, result...)
}

// liveRecord decodes rec and reports whether it is a well-formed record
// that has not expired at now. The result aliases rec.
func liveRecord(rec []byte, now time.Time) (state byte, result []byte, ok bool) {
	if len(rec) < idemHeader {
		return 0, nil, false
	}
	if int64(binary.BigEndian.Uint64(rec)) <= now.UnixNano() {
		return 0, nil, false
	}
	return rec[8], rec[idemHeader:], true
}

// sweepIdempotency deletes expired (and malformed) idempotency records.
func (s *Store) sweepIdempotency(ctx context.Context, now time.Time) error {
	if err := s.sweepBucket(ctx, bucketIdem, func(v []byte) bool {
		_, _, ok := liveRecord(v, now)
		return !ok
	}); err != nil {
		return fmt.Errorf("boltstore sweep idempotency: %w", err)
	}
	return nil
}

// sweepBucket deletes the keys of bucket whose values are expired, a chunk
// of keys per transaction so writers interleave.
func (s *Store) sweepBucket(ctx context.Context, bucket []byte, expired func(v []byte) bool) error {
	var last []byte // the last key visited
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var done bool
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			c := b.Cursor()
			k, v := c.First()
			if last != nil {
				k, v = c.Seek(last)
				if bytes.Equal(k, last) {
					k, v = c.Next()
				}
			}
			// Deleting under a cursor moves it, so collect first.
			var gone [][]byte
			for n := 0; k != nil && n < sweepChunk; k, v = c.Next() {
				last = append(last[:0], k...)
				if expired(v) {
					gone = append(gone, append([]byte(nil), k...))
				}
				n++
			}
			done = k == nil
			for _, k := range gone {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// ProcessOnce is the idempotency guard for work that only this process
// runs and whose completion is recorded elsewhere in this same file (the
// embedded webhook workers: an event is done when its queue item is
// acked). A claim lives in memory, since no other process can race for
// it, and nothing is written: a completion record would be one more
// commit per event and would close no gap the ack leaves open (a crash
// between publishing and acking is a crash before either write).
type ProcessOnce struct {
	mu      sync.Mutex
	running map[string]string // key -> holder
}

// ProcessOnce returns a process-local guard.
func (s *Store) ProcessOnce() *ProcessOnce {
	return &ProcessOnce{running: map[string]string{}}
}

// Reserve claims key; fresh is false while another caller holds it.
func (o *ProcessOnce) Reserve(_ context.Context, key, holder string, _ time.Duration) (prior []byte, fresh bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, held := o.running[key]; held {
		return nil, false, nil
	}
	o.running[key] = holder
	return nil, true, nil
}

// Complete ends the claim.
func (o *ProcessOnce) Complete(_ context.Context, key string, _ []byte, _ time.Duration) error {
	o.mu.Lock()
	delete(o.running, key)
	o.mu.Unlock()
	return nil
}

// Release ends holder's claim.
func (o *ProcessOnce) Release(_ context.Context, key, holder string) error {
	o.mu.Lock()
	if o.running[key] == holder {
		delete(o.running, key)
	}
	o.mu.Unlock()
	return nil
}
