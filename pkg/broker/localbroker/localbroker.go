// Package localbroker is the embedded broker.Broker of a single node. It
// owns the node's write path into the history log and the fan-out to its
// own hub: histories live in a Log (the history log, histlog), and
// delivering an event is a call of the Handler.
//
// Every Publish goes through one writer goroutine. The writer takes the
// calls queued while it was busy, appends all of their events in one Log
// call (a group commit: one disk sync for many publishers), hands the
// events of subscribed users to the Handler in cursor order, and then
// answers the callers. Because one goroutine assigns cursors and delivers,
// each user's events reach the Handler in order and without gaps, and an
// event is delivered only once it is in history.
package localbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// Log is the durable history the broker writes to and reads from.
// histlog.Store implements it.
type Log interface {
	// Append assigns each event the next cursor of its user and stores all
	// of them, or none.
	Append(ctx context.Context, events []*notification.Event) error
	// Range reads a user's history with the semantics of
	// broker.Broker.History.
	Range(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error)
	// Sweep applies retention to the histories of idle users.
	Sweep(ctx context.Context) error
	// Ready reports whether the log can be used.
	Ready(ctx context.Context) error
}

// Options tune a Broker. The zero value is usable.
type Options struct {
	// MaxBatch is how many events one group commit collects from queued
	// Publish calls (default DefaultMaxBatch). A single call with more
	// events is still committed whole.
	MaxBatch int

	// QueueSize is how many Publish calls may wait for the writer (default
	// DefaultQueueSize); further callers wait for room, bounded by their
	// context.
	QueueSize int

	// SweepInterval is how often Log.Sweep runs (default
	// DefaultSweepInterval).
	SweepInterval time.Duration

	// Logger receives sweep failures (default slog.Default()).
	Logger *slog.Logger
}

// Defaults for Options.
const (
	DefaultMaxBatch      = 1024
	DefaultQueueSize     = 1024
	DefaultSweepInterval = 10 * time.Minute
)

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Broker implements broker.Broker in process. Its methods are safe for
// concurrent use.
type Broker struct {
	log     Log
	handler broker.HandlerSlot
	opts    Options
	subs    subscriptions

	// mu orders sends on queue with Close: Publish sends while holding the
	// read lock, so once Close has held the write lock no send can follow,
	// and the writer's final drain sees every queued request.
	mu     sync.RWMutex
	closed atomic.Bool
	queue  chan *request

	stop        chan struct{} // closed by Close: drain the queue and exit
	writerDone  chan struct{}
	cancelSweep context.CancelFunc
	sweeperDone chan struct{}
	closeOnce   sync.Once
}

var _ broker.Broker = (*Broker)(nil)

// request is one Publish call waiting for the writer. Requests are pooled:
// the writer's send on done is its last use of a request.
type request struct {
	ctx    context.Context
	events []*notification.Event
	done   chan error // buffered: the writer never waits for the caller
}

var requests = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

// New returns a broker over log that delivers the events of subscribed
// users to handler (nil: the one registered later with RegisterHandler),
// and starts its writer and its retention sweeper. The
// log stays the caller's: Close does not close it, and the caller closes it
// after the broker.
func New(log Log, handler broker.Handler, opts Options) *Broker {
	if log == nil {
		panic("localbroker: New needs a Log")
	}
	opts = opts.withDefaults()
	sweepCtx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		log:         log,
		opts:        opts,
		queue:       make(chan *request, opts.QueueSize),
		stop:        make(chan struct{}),
		writerDone:  make(chan struct{}),
		cancelSweep: cancel,
		sweeperDone: make(chan struct{}),
	}
	b.subs.init()
	b.handler.Register(handler)
	go b.write()
	go b.sweep(sweepCtx)
	return b
}

// Publish appends the events to their users' histories, setting each
// event's Cursor, and hands those of subscribed users to the Handler. It
// returns once that is done.
//
// ctx bounds the wait for room in the queue, and cancels the call while it
// waits for its turn. Once the writer has started committing the events,
// Publish reports the outcome whatever ctx does, so an error always means
// that none of the events was appended or delivered. The broker owns the
// events until Publish returns; afterwards the Handler may still hold them,
// so they must not be changed.
func (b *Broker) Publish(ctx context.Context, events []*notification.Event) error {
	if len(events) == 0 {
		return nil
	}
	for i, ev := range events {
		if ev == nil || ev.User == "" {
			return fmt.Errorf("localbroker publish: event %d has no user", i)
		}
	}
	req := requests.Get().(*request)
	req.ctx, req.events = ctx, events
	if err := b.enqueue(req); err != nil {
		req.ctx, req.events = nil, nil
		requests.Put(req)
		return fmt.Errorf("localbroker publish: %w", err)
	}
	err := <-req.done
	req.ctx, req.events = nil, nil
	requests.Put(req)
	if err != nil {
		return fmt.Errorf("localbroker publish: %w", err)
	}
	return nil
}

func (b *Broker) enqueue(req *request) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if err := req.ctx.Err(); err != nil {
		return err
	}
	select {
	case b.queue <- req:
		return nil
	case <-req.ctx.Done():
		return req.ctx.Err()
	}
}

// write is the writer goroutine: it group-commits queued requests until
// Close, then commits whatever is still queued and exits.
func (b *Broker) write() {
	defer close(b.writerDone)
	var batch []*request
	var events []*notification.Event
	for {
		var req *request
		select {
		case req = <-b.queue:
		case <-b.stop:
			select {
			case req = <-b.queue:
			default:
				return
			}
		}
		batch, events = b.collect(req, batch, events)
		b.commit(batch, events)
		clear(batch)
		clear(events)
		batch, events = batch[:0], events[:0]
	}
}

// collect adds first and whatever else is queued, up to MaxBatch events,
// to the batch. Requests whose callers gave up are answered and left out.
func (b *Broker) collect(first *request, batch []*request, events []*notification.Event) ([]*request, []*notification.Event) {
	add := func(req *request) {
		if err := req.ctx.Err(); err != nil {
			req.done <- err
			return
		}
		batch = append(batch, req)
		events = append(events, req.events...)
	}
	add(first)
	for len(events) < b.opts.MaxBatch {
		select {
		case req := <-b.queue:
			add(req)
		default:
			return batch, events
		}
	}
	return batch, events
}

// commit appends the batch's events in one Log call, delivers them and
// answers the callers. When the group commit fails, each request is tried
// on its own, so one caller's bad event does not fail the others.
func (b *Broker) commit(batch []*request, events []*notification.Event) {
	if len(batch) == 0 {
		return
	}
	// Not a caller's context: a commit, once started, is seen through.
	ctx := context.Background()
	err := b.log.Append(ctx, events)
	if err == nil {
		b.deliver(events)
	}
	if err == nil || len(batch) == 1 {
		for _, req := range batch {
			req.done <- err
		}
		return
	}
	for _, req := range batch {
		err := b.log.Append(ctx, req.events)
		if err == nil {
			b.deliver(req.events)
		}
		req.done <- err
	}
}

// RegisterHandler sets the handler of subscribed users' events.
func (b *Broker) RegisterHandler(h broker.Handler) { b.handler.Register(h) }

// deliver hands the events of subscribed users to the handler, in order.
func (b *Broker) deliver(events []*notification.Event) {
	if b.subs.empty() {
		return
	}
	for _, ev := range events {
		if b.subs.has(ev.User) {
			b.handler.Deliver(ev)
		}
	}
}

// sweep runs the log's retention sweep every SweepInterval until ctx ends.
func (b *Broker) sweep(ctx context.Context) {
	defer close(b.sweeperDone)
	t := time.NewTicker(b.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			start := time.Now()
			if err := b.log.Sweep(ctx); err != nil && ctx.Err() == nil {
				b.opts.Logger.Warn("history retention sweep failed", "err", err, "took", time.Since(start))
			}
		}
	}
}

// Subscribe makes the Handler receive user's events, from every Publish
// that commits after Subscribe returns. Calls are counted: the user stays
// subscribed until Unsubscribe has been called as often.
func (b *Broker) Subscribe(_ context.Context, user string) error {
	if b.closed.Load() {
		return fmt.Errorf("localbroker subscribe: %w", broker.ErrClosed)
	}
	if user == "" {
		return errors.New("localbroker subscribe: empty user")
	}
	b.subs.add(user)
	return nil
}

// Unsubscribe undoes one Subscribe of user. Unsubscribing a user who is not
// subscribed does nothing.
func (b *Broker) Unsubscribe(_ context.Context, user string) error {
	b.subs.remove(user)
	return nil
}

// History reads the user's history from the log; see broker.Broker.
func (b *Broker) History(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	if b.closed.Load() {
		return nil, notification.Cursor{}, fmt.Errorf("localbroker history: %w", broker.ErrClosed)
	}
	events, head, err := b.log.Range(ctx, user, since, limit)
	if err != nil && !errors.Is(err, broker.ErrReset) {
		return nil, head, fmt.Errorf("localbroker history: %w", err)
	}
	return events, head, err
}

// Ready reports whether the broker is open and its log usable.
func (b *Broker) Ready(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if err := b.log.Ready(ctx); err != nil {
		return fmt.Errorf("localbroker ready: %w", err)
	}
	return nil
}

// Close stops accepting publishes, commits and delivers those already
// queued, and stops the writer and the sweeper. Publish calls made after
// Close has started fail with broker.ErrClosed. The Handler is not called
// once Close has returned. Close does not close the log, and must not be
// called from the Handler, whose return it waits for.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.cancelSweep()
		b.mu.Lock()
		b.closed.Store(true)
		b.mu.Unlock()
		close(b.stop)
		<-b.writerDone
		<-b.sweeperDone
	})
	return nil
}
