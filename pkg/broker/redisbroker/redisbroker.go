// Package redisbroker is the cluster broker: each user's history is a Redis
// stream, appended together with the publish by one Lua script, and each
// node subscribes only to the channels of users with sessions on it. Every
// user's events carry a gap-free sequence, so a node detects anything pub/sub
// lost (it is at-most-once, and drops everything across a reconnect) and
// closes the gap from the stream before delivering further.
package redisbroker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
)

// Options tune the broker.
type Options struct {
	Prefix           string // key prefix (default "herald:")
	Retention        broker.Retention
	Sharded          bool          // SPUBLISH/SSUBSCRIBE for Redis Cluster
	SubscribeTimeout time.Duration // how long Subscribe waits for Redis to confirm (default 10s)
	Logger           *slog.Logger
}

// Broker implements broker.Broker over Redis.
type Broker struct {
	c       redis.UniversalClient
	handler broker.Handler
	opts    Options

	ps   *redis.PubSub
	psMu sync.Mutex // orders subscription state changes with the commands that make them

	mu    sync.Mutex
	users map[string]*userSub

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// userSub is the node's subscription to one user's channel.
type userSub struct {
	refs   int
	active bool          // Redis confirmed the subscription
	ready  chan struct{} // closed when active

	mu        sync.Mutex
	baseKnown bool
	baseEpoch string // the user's history head when the subscription became active
	baseSeq   uint64

	// Delivery position, touched only by the receive goroutine.
	epoch string
	last  uint64
}

var _ broker.Broker = (*Broker)(nil)

// New returns a broker delivering subscribed users' events to handler.
func New(c redis.UniversalClient, handler broker.Handler, opts Options) (*Broker, error) {
	if opts.Prefix == "" {
		opts.Prefix = "herald:"
	}
	opts.Retention = opts.Retention.WithDefaults()
	if opts.SubscribeTimeout <= 0 {
		opts.SubscribeTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Broker{
		c: c, handler: handler, opts: opts,
		users: make(map[string]*userSub),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	ctx := context.Background()
	if opts.Sharded {
		b.ps = c.SSubscribe(ctx)
	} else {
		b.ps = c.Subscribe(ctx)
	}
	go b.receive()
	return b, nil
}

func (b *Broker) metaKey(user string) string   { return b.opts.Prefix + "{" + user + "}:m" }
func (b *Broker) streamKey(user string) string { return b.opts.Prefix + "{" + user + "}:h" }
func (b *Broker) channel(user string) string   { return b.opts.Prefix + "{" + user + "}:c" }

// userOf is the inverse of channel.
func (b *Broker) userOf(ch string) (string, bool) {
	rest, ok := strings.CutPrefix(ch, b.opts.Prefix+"{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}:c")
}

// Subscribe makes this node receive user's events; it returns once Redis
// confirmed the subscription.
func (b *Broker) Subscribe(ctx context.Context, user string) error {
	if b.closed() {
		return broker.ErrClosed
	}
	b.psMu.Lock()
	b.mu.Lock()
	us := b.users[user]
	fresh := us == nil
	if fresh {
		us = &userSub{ready: make(chan struct{})}
		b.users[user] = us
	}
	us.refs++
	b.mu.Unlock()
	if fresh {
		// The channel is recorded by go-redis even when the write fails, and
		// re-subscribed on reconnect; the confirmation is what we wait for.
		if err := b.subscribeCmd(ctx, user); err != nil {
			b.opts.Logger.Debug("subscribe command failed; waiting for reconnect", "err", err)
		}
	}
	b.psMu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, b.opts.SubscribeTimeout)
	defer cancel()
	select {
	case <-us.ready:
	case <-ctx.Done():
		_ = b.Unsubscribe(context.Background(), user)
		return fmt.Errorf("redisbroker subscribe %s: %w", user, ctx.Err())
	case <-b.stop:
		return broker.ErrClosed
	}
	if fresh {
		b.readBase(ctx, user, us)
	}
	return nil
}

func (b *Broker) subscribeCmd(ctx context.Context, user string) error {
	if b.opts.Sharded {
		return b.ps.SSubscribe(ctx, b.channel(user))
	}
	return b.ps.Subscribe(ctx, b.channel(user))
}

// readBase records the user's head right after the subscription became
// active: if pub/sub drops messages before the first one arrives, the
// backfill after the reconnect starts there.
func (b *Broker) readBase(ctx context.Context, user string, us *userSub) {
	vals, err := b.c.HMGet(ctx, b.metaKey(user), "epoch", "seq").Result()
	if err != nil {
		return
	}
	epoch, _ := vals[0].(string)
	seqStr, _ := vals[1].(string)
	seq, _ := strconv.ParseUint(seqStr, 10, 64)
	us.mu.Lock()
	us.baseKnown, us.baseEpoch, us.baseSeq = true, epoch, seq
	us.mu.Unlock()
}

// Unsubscribe undoes one Subscribe; the last one leaves the channel.
func (b *Broker) Unsubscribe(ctx context.Context, user string) error {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	b.mu.Lock()
	us := b.users[user]
	if us == nil {
		b.mu.Unlock()
		return nil
	}
	us.refs--
	last := us.refs <= 0
	if last {
		delete(b.users, user)
	}
	b.mu.Unlock()
	if !last || b.closed() {
		return nil
	}
	var err error
	if b.opts.Sharded {
		err = b.ps.SUnsubscribe(ctx, b.channel(user))
	} else {
		err = b.ps.Unsubscribe(ctx, b.channel(user))
	}
	if err != nil {
		return fmt.Errorf("redisbroker unsubscribe: %w", err)
	}
	return nil
}

// Ready pings Redis.
func (b *Broker) Ready(ctx context.Context) error {
	if b.closed() {
		return broker.ErrClosed
	}
	if err := b.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

func (b *Broker) closed() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// Close stops delivery. The Redis client stays open: it belongs to the caller.
func (b *Broker) Close() error {
	b.once.Do(func() {
		close(b.stop)
		_ = b.ps.Close()
		<-b.done
	})
	return nil
}
