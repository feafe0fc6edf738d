// Package histlog keeps the per-user notification histories of an embedded
// node in an append-only log of segment files.
//
// An Append writes its events as records at the end of the active segment
// in one write and one data sync, whatever the number of users it touches:
// a fan-out to ten thousand users is one sequential write. Which record
// holds which event of which user is kept in memory, in an index rebuilt
// from the segments when the log is opened. Retention trims the index;
// a segment whose events are all trimmed is deleted as a whole.
//
// Layout of the directory:
//
//	lock               held (flock) while the log is open
//	epoch              the history epoch of every cursor the log assigns
//	0000000000000001.seg, …   segments, oldest first
//
// A record is a little-endian uint32 body length, the CRC-32C of the body,
// and the body: a kind byte, the sequence number and the user (both
// uvarint-prefixed), and for an event its envelope. A head record carries
// a user's head forward when the segment holding it is deleted, so a
// sequence number is never handed out twice in an epoch.
package histlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("histlog: closed")

// ErrLocked is returned by Open when another process has the log open.
var ErrLocked = segfile.ErrLocked

// Options tune a Store. The zero value is usable.
type Options struct {
	Retention broker.Retention

	// SegmentSize is the size past which the active segment is closed and
	// a new one started (default DefaultSegmentSize, at most MaxSegmentSize).
	SegmentSize int64
}

// Segment size bounds. Offsets into a segment are kept as uint32.
const (
	DefaultSegmentSize = 64 << 20
	MaxSegmentSize     = 1 << 30
)

// Store is the history log. Its methods are safe for concurrent use; Append
// and Sweep calls are serialized, Range calls run beside them.
type Store struct {
	dir   string
	opts  Options
	epoch string
	lock  *os.File
	now   func() time.Time

	index index

	// writeMu serializes writers: Append, Sweep's head records and segment
	// changes. The writer alone changes heads, pending counts and the
	// active segment.
	writeMu sync.Mutex
	active  *segment
	broken  error // set when a failed write could not be undone
	batch   []pendingEvent
	wbuf    []byte

	// segMu guards segs. Range holds it for reading while it reads
	// records, so a segment is never deleted under a reader.
	segMu  sync.RWMutex
	segs   map[uint32]*segment
	closed bool
}

// Open opens the log in dir, creating the directory and a new epoch if
// needed, and rebuilds the index from the segments. A torn record at the
// end of the newest segment (a crash during a write) is cut off.
func Open(dir string, opts Options) (*Store, error) {
	opts.Retention = opts.Retention.WithDefaults()
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	opts.SegmentSize = min(opts.SegmentSize, MaxSegmentSize)
	lock, err := segfile.Lock(dir)
	if err != nil {
		return nil, fmt.Errorf("histlog open: %w", err)
	}
	s := &Store{dir: dir, opts: opts, lock: lock, now: time.Now, segs: make(map[uint32]*segment)}
	s.index.init()
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("histlog open %s: %w", dir, err)
	}
	return s, nil
}

// load reads (or creates) the epoch and replays every segment into the
// index, then opens the segment new appends go to.
func (s *Store) load() error {
	ids, err := segfile.List(s.dir)
	if err != nil {
		return err
	}
	if err := s.loadEpoch(len(ids) > 0); err != nil {
		return err
	}
	for i, id := range ids {
		f, err := segfile.Open(s.dir, id)
		if err != nil {
			return err
		}
		seg := &segment{id: id, f: f}
		s.segs[id] = seg
		if err := s.replay(seg, i == len(ids)-1); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		s.active = s.segs[ids[len(ids)-1]]
		return nil
	}
	return s.roll(1)
}

// loadEpoch reads the epoch file; a log without one gets a new epoch,
// unless it already has segments (whose cursors would then be reused).
func (s *Store) loadEpoch(hasSegments bool) error {
	path := filepath.Join(s.dir, "epoch")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		epoch := strings.TrimSpace(string(b))
		if _, perr := notification.ParseCursor(epoch + "-1"); perr != nil || epoch == "" {
			return fmt.Errorf("malformed epoch %q", epoch)
		}
		s.epoch = epoch
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read epoch: %w", err)
	case hasSegments:
		return errors.New("segments without an epoch file")
	}
	return s.writeEpoch(notification.NewEpoch())
}

// writeEpoch durably sets the epoch of an empty log.
func (s *Store) writeEpoch(epoch string) error {
	path := filepath.Join(s.dir, "epoch")
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, []byte(epoch+"\n")); err != nil {
		return fmt.Errorf("write epoch: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write epoch: %w", err)
	}
	if err := segfile.SyncDir(s.dir); err != nil {
		return fmt.Errorf("write epoch: %w", err)
	}
	s.epoch = epoch
	return nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Epoch returns the history epoch: every cursor this log assigns has it.
func (s *Store) Epoch() string { return s.epoch }

// Ready reports whether appends can be made.
func (s *Store) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.writable()
}

// Close syncs nothing (every append is synced before it returns) and
// releases the files. Calls after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.segMu.Lock()
	defer s.segMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.active = nil
	return s.closeFiles()
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, seg := range s.segs {
		errs = append(errs, seg.f.Close())
	}
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}
