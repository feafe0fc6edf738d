package redisbroker

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/notification"
)

// receive is the node's single pub/sub reader. Everything delivered to the
// handler passes through it, so each user's events come out in one order.
func (b *Broker) receive() {
	defer close(b.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	backoff := 50 * time.Millisecond
	for {
		msg, err := b.ps.ReceiveTimeout(ctx, 20*time.Second)
		if err != nil {
			if b.closed() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet connection: a ping proves it alive (or breaks it).
				_ = b.ps.Ping(ctx)
				continue
			}
			b.opts.Logger.Warn("redis pub/sub connection lost; resubscribing", "err", err)
			select {
			case <-time.After(backoff):
			case <-b.stop:
				return
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				b.confirmed(ctx, m.Channel)
			}
		case *redis.Message:
			b.message(ctx, m.Channel, m.Payload)
		}
	}
}

func (b *Broker) lookup(ch string) (string, *userSub) {
	user, ok := b.userOf(ch)
	if !ok {
		return "", nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return user, b.users[user]
}

// confirmed handles a subscription confirmation: the first one activates
// the subscription; a later one means go-redis re-subscribed after a lost
// connection, and whatever was published meanwhile is read from the stream.
func (b *Broker) confirmed(ctx context.Context, ch string) {
	user, us := b.lookup(ch)
	if us == nil {
		return
	}
	b.mu.Lock()
	wasActive := us.active
	if !wasActive {
		us.active = true
		close(us.ready)
	}
	b.mu.Unlock()
	if wasActive {
		b.backfill(ctx, user, us, 0)
	}
}

// message handles one published event: "<epoch> <seq> <envelope>".
func (b *Broker) message(ctx context.Context, ch, payload string) {
	user, us := b.lookup(ch)
	if us == nil {
		return
	}
	epoch, rest, ok1 := cut(payload)
	seqStr, env, ok2 := cut(rest)
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if !ok1 || !ok2 || err != nil {
		b.opts.Logger.Warn("malformed pub/sub message", "channel", ch)
		return
	}
	switch {
	case us.epoch == "":
		// First event since subscribing: nothing to compare against; a
		// resuming session reads history itself.
		us.epoch, us.last = epoch, seq-1
	case epoch != us.epoch:
		// The history started again: deliver the new one from its start.
		us.epoch, us.last = epoch, 0
	}
	if seq <= us.last {
		return // already delivered by a backfill
	}
	if seq > us.last+1 {
		b.backfill(ctx, user, us, seq-1)
		if seq <= us.last {
			return
		}
	}
	ev, err := notification.UnmarshalEnvelope(user, notification.Cursor{Epoch: epoch, Seq: seq}, []byte(env))
	if err != nil {
		b.opts.Logger.Warn("malformed event envelope", "channel", ch, "err", err)
		return
	}
	us.last = seq
	b.handler(ev)
}

// backfill delivers the user's events after the last delivered one, up to
// seq to (0: the newest), from the stream.
func (b *Broker) backfill(ctx context.Context, user string, us *userSub, to uint64) {
	from := us.last + 1
	epoch := us.epoch
	if epoch == "" {
		us.mu.Lock()
		known := us.baseKnown
		epoch, from = us.baseEpoch, us.baseSeq+1
		us.mu.Unlock()
		if !known {
			return // no position to start from; resuming sessions read history themselves
		}
	}
	streamEpoch, events, err := b.fetchRange(ctx, user, from, to)
	if err != nil {
		b.opts.Logger.Warn("backfill failed", "user", user, "err", err)
		return
	}
	if streamEpoch != epoch && streamEpoch != "" && epoch != "" {
		// A new history: everything in it is new to this node.
		if _, events, err = b.fetchRange(ctx, user, 1, to); err != nil {
			b.opts.Logger.Warn("backfill failed", "user", user, "err", err)
			return
		}
		us.epoch, us.last = streamEpoch, 0
	}
	for _, ev := range events {
		if us.epoch == ev.Cursor.Epoch && ev.Cursor.Seq <= us.last {
			continue
		}
		us.epoch, us.last = ev.Cursor.Epoch, ev.Cursor.Seq
		b.handler(ev)
	}
}

func cut(s string) (string, string, bool) {
	i := strings.IndexByte(s, ' ')
	if i < 0 || i > 64 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
