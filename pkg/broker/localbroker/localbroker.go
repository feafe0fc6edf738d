// Package localbroker is the embedded, in-process broker: histories live in
// an on-disk log (the embedded store), and fan-out is a function call into
// this node's hub. A single writer goroutine group-commits concurrent
// publishes, which both amortises the disk sync and gives every user's
// events one order with no gaps.
package localbroker

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// Log is the durable history the broker appends to.
type Log interface {
	Append(ctx context.Context, events []*notification.Event) error
	Range(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error)
	Sweep(ctx context.Context) error
	Ready(ctx context.Context) error
}

// Options tune the broker.
type Options struct {
	MaxBatch      int           // events per group commit (default 4096)
	SweepInterval time.Duration // retention sweep of idle histories (default 10m)
	Logger        *slog.Logger
}

// Broker implements broker.Broker in process.
type Broker struct {
	log     Log
	handler broker.Handler
	opts    Options

	reqs   chan *publishReq
	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once

	seed maphash.Seed
	subs [32]subShard
}

type subShard struct {
	mu    sync.RWMutex
	count map[string]int
}

type publishReq struct {
	events []*notification.Event
	done   chan error
}

var _ broker.Broker = (*Broker)(nil)

// New starts a broker over log delivering to handler.
func New(log Log, handler broker.Handler, opts Options) *Broker {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Broker{
		log: log, handler: handler, opts: opts,
		reqs: make(chan *publishReq, 1024),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		seed: maphash.MakeSeed(),
	}
	for i := range b.subs {
		b.subs[i].count = make(map[string]int)
	}
	go b.writer()
	return b
}

// Publish appends events to history and delivers them to subscribed users.
func (b *Broker) Publish(ctx context.Context, events []*notification.Event) error {
	if len(events) == 0 {
		return nil
	}
	if b.closed.Load() {
		return broker.ErrClosed
	}
	req := &publishReq{events: events, done: make(chan error, 1)}
	select {
	case b.reqs <- req:
	case <-b.stop:
		return broker.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer is the single goroutine that appends and delivers.
func (b *Broker) writer() {
	defer close(b.done)
	sweep := time.NewTicker(b.opts.SweepInterval)
	defer sweep.Stop()
	var batch []*publishReq
	var events []*notification.Event
	for {
		select {
		case req := <-b.reqs:
			batch = append(batch[:0], req)
			events = append(events[:0], req.events...)
		more:
			for len(events) < b.opts.MaxBatch {
				select {
				case req := <-b.reqs:
					batch = append(batch, req)
					events = append(events, req.events...)
				default:
					break more
				}
			}
			b.commit(batch, events)
			clear(events)
		case <-sweep.C:
			if err := b.log.Sweep(context.Background()); err != nil {
				b.opts.Logger.Warn("history sweep failed", "err", err)
			}
		case <-b.stop:
			for {
				select {
				case req := <-b.reqs:
					req.done <- broker.ErrClosed
				default:
					return
				}
			}
		}
	}
}

func (b *Broker) commit(batch []*publishReq, events []*notification.Event) {
	err := b.log.Append(context.Background(), events)
	if err == nil {
		for _, ev := range events {
			if b.subscribed(ev.User) {
				b.handler(ev)
			}
		}
	}
	for _, req := range batch {
		req.done <- err
	}
}

func (b *Broker) shard(user string) *subShard {
	return &b.subs[maphash.String(b.seed, user)%uint64(len(b.subs))]
}

func (b *Broker) subscribed(user string) bool {
	sh := b.shard(user)
	sh.mu.RLock()
	n := sh.count[user]
	sh.mu.RUnlock()
	return n > 0
}

// Subscribe starts delivery of user's events; it is active on return.
func (b *Broker) Subscribe(_ context.Context, user string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	sh := b.shard(user)
	sh.mu.Lock()
	sh.count[user]++
	sh.mu.Unlock()
	return nil
}

// Unsubscribe undoes one Subscribe.
func (b *Broker) Unsubscribe(_ context.Context, user string) error {
	sh := b.shard(user)
	sh.mu.Lock()
	if n := sh.count[user]; n <= 1 {
		delete(sh.count, user)
	} else {
		sh.count[user] = n - 1
	}
	sh.mu.Unlock()
	return nil
}

// History reads the user's history.
func (b *Broker) History(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	return b.log.Range(ctx, user, since, limit)
}

// Ready reports whether the log is usable.
func (b *Broker) Ready(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return b.log.Ready(ctx)
}

// Close stops the writer; queued publishes fail with ErrClosed.
func (b *Broker) Close() error {
	b.once.Do(func() {
		b.closed.Store(true)
		close(b.stop)
		<-b.done
	})
	return nil
}
