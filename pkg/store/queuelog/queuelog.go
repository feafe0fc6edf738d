// Package queuelog is the embedded node's durable webhook queue: an
// append-only log of segment files, so that a webhook's 200 costs one
// sequential write and one data sync shared by every webhook of the moment.
//
// Every change to an item is a record appended to the active segment: the
// item itself when it is enqueued (and again when a failure schedules its
// retry), a take when it is handed out, a done when it is acknowledged or
// dies. Which items are queued, and where their bodies are, is kept in
// memory and rebuilt from the segments when the log is opened. Segments
// are deleted oldest first, once every item in them is done; the few items
// still queued in an old segment are carried forward into the active one
// so that a slow item does not keep the log from shrinking.
//
// Dedupe keys are remembered in memory from the moment their item is
// written and are written behind to the Backing (the bbolt file) in
// batches: a day of keys does not fit in memory, but the 200 need not wait
// for a B-tree. A segment is deleted only after its keys are in the
// Backing, so a crash loses none: they are replayed from the log.
package queuelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// maxKey bounds dedupe keys.
const maxKey = 1 << 10

// Key is a dedupe key on its way to the Backing.
type Key struct {
	Name    string
	Expires time.Time
}

// DeadItem is an item that failed too often.
type DeadItem struct {
	Attempts int
	Enqueued time.Time
	Body     []byte
}

// Backing keeps what outlives the log: dedupe keys for their whole TTL and
// the dead letters.
type Backing interface {
	// HasKey reports whether key is stored and unexpired at now.
	HasKey(key string, now time.Time) (bool, error)
	// PutKeys stores keys durably.
	PutKeys(keys []Key) error
	// PutDead stores a dead item durably.
	PutDead(it DeadItem) error
	// DeadCount is the number of dead items stored.
	DeadCount() (int64, error)
}

// Options tune a Log.
type Options struct {
	queue.Options
	// SegmentSize is the size past which a new segment is started
	// (default 16 MiB).
	SegmentSize int64
	// KeyFlush is how often dedupe keys are written behind (default 100 ms).
	KeyFlush time.Duration
	Logger   *slog.Logger
}

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("queuelog: closed")

// item is a queued item's state. Its body is read from its record.
type item struct {
	seq       uint64
	seg       *segment
	off       int64 // of its newest item record
	size      int64 // of that record
	attempts  int
	notBefore int64
	enqueued  int64
	expires   int64
	key       string
	taken     bool // handed out, not yet acknowledged or failed
	ending    bool // an ack or a failure is being written: no other may start
	carrying  bool // being carried forward out of an old segment
}

// segment is one file of the log.
type segment struct {
	id    uint32
	f     *os.File
	size  int64 // bytes of whole records
	alloc int64 // bytes written, records or zeroes ahead of them (segfile.Write)
	live  int   // items whose newest item record is here
	used  int64 // bytes of those records
	keys  int   // dedupe keys written here and not yet in the Backing
}

// Log is the queue. Its methods are safe for concurrent use.
type Log struct {
	dir     string
	opts    Options
	backing Backing
	lock    *os.File
	now     func() time.Time

	mu       sync.Mutex
	closed   bool
	broken   error // a failed write that could not be undone
	nextSeq  uint64
	items    map[uint64]*item
	ready    []*item          // not taken, due, in seq order (items taken meanwhile are skipped)
	delayed  []*item          // waiting for their notBefore
	keys     map[string]int64 // dedupe key → expiry, for keys not yet known to be in the Backing
	unsaved  []pendingKey     // keys to write behind
	segs     []*segment       // oldest first; the last is the active one
	pending  []byte           // records waiting for the next commit
	applies  []applyFunc      // run under mu once the pending records are committed or failed
	commit   *commit          // the commit the pending records will be part of
	spareBuf []byte
	wake     chan struct{} // closed when an item may have become ready
	readBuf  []byte

	kick    chan struct{} // the committer: records are pending
	saveNow chan struct{} // the key writer: many keys are waiting
	stop    chan struct{}
	done    sync.WaitGroup
}

type pendingKey struct {
	key     string
	expires int64
	seg     *segment
}

// commit is one write and data sync of the records pending at its start.
type commit struct {
	done chan struct{}
	err  error
}

// Open opens the log in dir, creating it if needed, and rebuilds the queue
// from its segments. A torn record at the end of the newest segment (a
// crash during a write) is cut off.
func Open(dir string, b Backing, opts Options) (*Log, error) {
	opts.Options = opts.Options.WithDefaults()
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 16 << 20
	}
	opts.SegmentSize = min(opts.SegmentSize, 1<<30)
	if opts.KeyFlush <= 0 {
		opts.KeyFlush = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	lock, err := segfile.Lock(dir)
	if err != nil {
		return nil, fmt.Errorf("queuelog open: %w", err)
	}
	l := &Log{
		dir: dir, opts: opts, backing: b, lock: lock, now: time.Now,
		nextSeq: 1, items: map[uint64]*item{}, keys: map[string]int64{},
		commit: newCommit(), wake: make(chan struct{}),
		kick: make(chan struct{}, 1), saveNow: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	if err := l.load(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("queuelog open %s: %w", dir, err)
	}
	l.done.Add(2)
	go l.commitLoop()
	go l.keyLoop()
	return l, nil
}

func newCommit() *commit { return &commit{done: make(chan struct{})} }

// Close stops the log after writing the keys that wait to be written
// behind. Calls after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var errs []error
	for _, seg := range l.segs {
		errs = append(errs, seg.f.Close())
	}
	l.segs = nil
	return errors.Join(append(errs, l.lock.Close())...)
}

// Ready reports whether the log takes writes.
func (l *Log) Ready(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writable()
}

// writable reports why no record can be written, if so. mu is held.
func (l *Log) writable() error {
	switch {
	case l.closed:
		return ErrClosed
	case l.broken != nil:
		return l.broken
	}
	return nil
}
