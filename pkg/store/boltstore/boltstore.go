// Package boltstore is Herald's embedded store: one bbolt file in the data
// directory holding what a single node keeps across restarts besides the
// notification histories (which live in the history log, histlog). It owns
//
//   - the idempotency keys of the server API;
//   - a small key/value space for persisted settings;
//   - the webhook work queue, conversation members, push devices and
//     pending pushes.
//
// It is the zero-configuration back-end of a single node; a cluster uses
// redisstore instead.
//
// The file has these top-level buckets:
//
//	meta         "epoch" → the epoch of histories kept here by earlier
//	             versions, "version" → the format version
//	idempotency  key → expiry (8 bytes, Unix ns) | state (1 byte) | result
//	kv           key → value
//	queue-dedupe, queue-dead    the webhook work queue's keys and dead letters (queue.go)
//	members      one sub-bucket per conversation: user → nothing
//	devices, user-devices, push-pending, push-due    push (devices.go)
//
// A Store is safe for concurrent use. bbolt runs one writing transaction at
// a time and every write is synced to disk before it returns, so callers
// that write often should batch.
package boltstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/heraldhq/herald/pkg/notification"
)

// DefaultLockTimeout is how long Open waits for the file lock by default.
const DefaultLockTimeout = 2 * time.Second

// formatVersion is written into new files; Open refuses files of a later
// version rather than misreading them.
const formatVersion = 1

var (
	bucketMeta = []byte("meta")
	bucketIdem = []byte("idempotency")
	bucketKV   = []byte("kv")
	keyEpoch   = []byte("epoch")
	keyVersion = []byte("version")
)

// ErrNotFound is returned by Get for a key that has no value.
var ErrNotFound = errors.New("boltstore: not found")

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("boltstore: database file is locked by another process")

// Options tune a Store. The zero value is usable.
type Options struct {
	// LockTimeout is how long Open waits for a file lock held by another
	// process before failing with ErrLocked (default DefaultLockTimeout).
	LockTimeout time.Duration
}

// Store is an open embedded store.
type Store struct {
	db    *bolt.DB
	path  string
	epoch string
	now   func() time.Time // replaced in tests

	pending pendingState
}

// Open opens the store file at path, creating it (but not its directory)
// if needed. A new file gets a new random history epoch; an existing one
// keeps its epoch, so cursors handed out before a restart stay valid. Only
// one process can have the file open: another one's Open fails with
// ErrLocked after opts.LockTimeout.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// The freelist is rebuilt by scanning on open instead of being
		// written on every commit: cheaper appends, slower start.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (waited %s; is another herald using this data directory?)", path, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore open %s: %w", path, err)
	}
	// Batch callers (queue, idempotency, pending pushes) share a commit
	// with whoever arrives within this delay; bbolt's 10 ms default would
	// be the latency of every lone call.
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{db: db, path: path, now: time.Now}
	if err := db.Update(s.init); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore open %s: %w", path, err)
	}
	return s, nil
}

// init creates the buckets of a new file and reads (or creates) the epoch.
func (s *Store) init(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketIdem, bucketKV, bucketDedupe, bucketDead, bucketMembers,
		bucketDevices, bucketUserDevices, bucketPending, bucketDue} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyVersion); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			return fmt.Errorf("malformed format version %q", v)
		}
		if n > formatVersion {
			return fmt.Errorf("file format version %d is newer than this herald understands (%d)", n, formatVersion)
		}
	} else if err := meta.Put(keyVersion, []byte(strconv.Itoa(formatVersion))); err != nil {
		return fmt.Errorf("write format version: %w", err)
	}
	if v := meta.Get(keyEpoch); v != nil {
		if !validEpoch(v) {
			return fmt.Errorf("malformed history epoch %q", v)
		}
		s.epoch = string(v)
		return nil
	}
	s.epoch = notification.NewEpoch()
	if err := meta.Put(keyEpoch, []byte(s.epoch)); err != nil {
		return fmt.Errorf("write history epoch: %w", err)
	}
	return nil
}

// validEpoch accepts what notification.ParseCursor accepts as an epoch.
func validEpoch(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// Epoch returns the history epoch: every cursor this store assigns has it.
func (s *Store) Epoch() string { return s.epoch }

// Close closes the file. Calls made after Close fail.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore close %s: %w", s.path, err)
	}
	return nil
}

// Ready reports whether the store is open and readable.
func (s *Store) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore ready: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("meta bucket missing")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore ready: %w", err)
	}
	return nil
}

// checkKey rejects keys bbolt cannot store.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > bolt.MaxKeySize {
		return fmt.Errorf("key of %d bytes is longer than %d", len(key), bolt.MaxKeySize)
	}
	return nil
}
