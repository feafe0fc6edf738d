package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/queue"
)

// The work queue lives in three buckets:
//
//	queue         seq (8 bytes) → attempts (4) | not before (8, Unix ns) | enqueued (8) | body
//	queue-dedupe  key → expiry (8 bytes, Unix ns)
//	queue-dead    seq (8 bytes) → the record as it was when it died
//
// Which items are being processed is kept in memory only: after a restart
// every item left in the bucket is handed out again.
var (
	bucketQueue  = []byte("queue")
	bucketDedupe = []byte("queue-dedupe")
	bucketDead   = []byte("queue-dead")
)

const queueHeader = 4 + 8 + 8

// Queue is the embedded durable work queue over a Store's file.
type Queue struct {
	s    *Store
	opts queue.Options

	mu       sync.Mutex
	inflight map[uint64]bool
	wake     chan struct{} // signalled when an item may have become readable
}

// Queue returns the store's work queue. Call it once per Store.
func (s *Store) Queue(opts queue.Options) *Queue {
	return &Queue{s: s, opts: opts.WithDefaults(), inflight: map[uint64]bool{}, wake: make(chan struct{}, 1)}
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Enqueue stores body unless key was enqueued within the dedupe TTL; dup
// reports a duplicate. Concurrent calls share one transaction and fsync.
func (q *Queue) Enqueue(ctx context.Context, key string, body []byte) (dup bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("boltstore enqueue: %w", err)
	}
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("boltstore enqueue: %w", err)
	}
	now := q.s.now()
	err = q.s.db.Batch(func(tx *bolt.Tx) error {
		dup = false // Batch may run this function again
		d := tx.Bucket(bucketDedupe)
		if v := d.Get([]byte(key)); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now.UnixNano() {
			dup = true
			return nil
		}
		exp := make([]byte, 8)
		binary.BigEndian.PutUint64(exp, uint64(now.Add(q.opts.DedupeTTL).UnixNano()))
		if err := d.Put([]byte(key), exp); err != nil {
			return err
		}
		b := tx.Bucket(bucketQueue)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(seqKey(seq), queueRecord(0, time.Time{}, now, body))
	})
	if err != nil {
		return false, fmt.Errorf("boltstore enqueue: %w: %w", queue.ErrUnavailable, err)
	}
	if !dup {
		q.signal()
	}
	return dup, nil
}

func queueRecord(attempts int, notBefore, enqueued time.Time, body []byte) []byte {
	rec := make([]byte, queueHeader+len(body))
	binary.BigEndian.PutUint32(rec, uint32(attempts))
	var nb int64
	if !notBefore.IsZero() {
		nb = notBefore.UnixNano()
	}
	binary.BigEndian.PutUint64(rec[4:], uint64(nb))
	binary.BigEndian.PutUint64(rec[12:], uint64(enqueued.UnixNano()))
	copy(rec[queueHeader:], body)
	return rec
}

func parseQueueRecord(rec []byte) (attempts int, notBefore int64, enqueued time.Time, body []byte, ok bool) {
	if len(rec) < queueHeader {
		return 0, 0, time.Time{}, nil, false
	}
	return int(binary.BigEndian.Uint32(rec)), int64(binary.BigEndian.Uint64(rec[4:])),
		time.Unix(0, int64(binary.BigEndian.Uint64(rec[12:]))), rec[queueHeader:], true
}

// Read hands out up to max items no other reader holds, waiting up to wait
// for one to arrive. Each handed-out item's attempt count is raised on disk
// first, so an item that crashes the process still reaches MaxAttempts.
func (q *Queue) Read(ctx context.Context, max int, wait time.Duration) ([]queue.Item, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		items, next, err := q.take(max)
		if err != nil || len(items) > 0 {
			return items, err
		}
		var retry <-chan time.Time
		if next > 0 {
			t := time.NewTimer(next)
			defer t.Stop()
			retry = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, nil
		case <-q.wake:
		case <-retry:
		}
	}
}

// take claims ready items; next is how long until the earliest waiting one
// becomes ready (0: none waits). The claim is a batch transaction, so it
// shares its commit with the enqueues and acks of the moment; bbolt may
// run it twice, and it starts from nothing each time.
func (q *Queue) take(max int) (items []queue.Item, next time.Duration, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.s.now()
	err = q.s.db.Batch(func(tx *bolt.Tx) error {
		items, next = items[:0], 0
		b := tx.Bucket(bucketQueue)
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(items) < max; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if q.inflight[seq] {
				continue
			}
			attempts, nb, enq, body, ok := parseQueueRecord(v)
			if !ok {
				continue
			}
			if nb > now.UnixNano() {
				if wait := time.Duration(nb - now.UnixNano()); next == 0 || wait < next {
					next = wait
				}
				continue
			}
			attempts++
			items = append(items, queue.Item{
				ID: strconv.FormatUint(seq, 10), Body: append([]byte(nil), body...),
				Attempts: attempts, Enqueued: enq,
			})
			rec := append([]byte(nil), v...)
			binary.BigEndian.PutUint32(rec, uint32(attempts))
			if err := b.Put(k, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("boltstore queue read: %w: %w", queue.ErrUnavailable, err)
	}
	for _, it := range items {
		seq, _ := strconv.ParseUint(it.ID, 10, 64)
		q.inflight[seq] = true
	}
	return items, next, nil
}

// Ack removes processed items.
func (q *Queue) Ack(ctx context.Context, ids ...string) error {
	seqs, err := parseIDs(ids)
	if err != nil {
		return fmt.Errorf("boltstore queue ack: %w", err)
	}
	err = q.s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQueue)
		for _, seq := range seqs {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	q.release(seqs)
	if err != nil {
		return fmt.Errorf("boltstore queue ack: %w", err)
	}
	return nil
}

// Fail records a failed attempt of it: the item is handed out again after
// RetryAfter (doubling per attempt), or moved to the dead letters once it
// has had MaxAttempts.
func (q *Queue) Fail(ctx context.Context, it queue.Item) (dead bool, err error) {
	seqs, err := parseIDs([]string{it.ID})
	if err != nil {
		return false, fmt.Errorf("boltstore queue fail: %w", err)
	}
	seq := seqs[0]
	now := q.s.now()
	err = q.s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQueue)
		v := b.Get(seqKey(seq))
		attempts, _, enq, body, ok := parseQueueRecord(v)
		if !ok {
			return nil // acked or dead already
		}
		attempts = max(attempts, it.Attempts)
		if attempts >= q.opts.MaxAttempts {
			dead = true
			if err := tx.Bucket(bucketDead).Put(seqKey(seq), append([]byte(nil), v...)); err != nil {
				return err
			}
			return b.Delete(seqKey(seq))
		}
		backoff := q.opts.RetryAfter << min(attempts-1, 10)
		return b.Put(seqKey(seq), queueRecord(attempts, now.Add(backoff), enq, body))
	})
	q.release(seqs)
	if err != nil {
		return false, fmt.Errorf("boltstore queue fail: %w", err)
	}
	q.signal()
	return dead, nil
}

func (q *Queue) release(seqs []uint64) {
	q.mu.Lock()
	for _, seq := range seqs {
		delete(q.inflight, seq)
	}
	q.mu.Unlock()
}

// Stats returns how many items wait (including those being processed) and
// how many are dead.
func (q *Queue) Stats(ctx context.Context) (depth, dead int64, err error) {
	err = q.s.db.View(func(tx *bolt.Tx) error {
		depth = int64(tx.Bucket(bucketQueue).Stats().KeyN)
		dead = int64(tx.Bucket(bucketDead).Stats().KeyN)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("boltstore queue stats: %w", err)
	}
	return depth, dead, nil
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

func parseIDs(ids []string) ([]uint64, error) {
	out := make([]uint64, len(ids))
	for i, id := range ids {
		seq, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return nil, errors.New("malformed item id " + strconv.Quote(id))
		}
		out[i] = seq
	}
	return out, nil
}
