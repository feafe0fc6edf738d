package redisbroker

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reconnect backoff of the receive loop while Redis is unreachable.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// receive is the node's single pub/sub reader. It routes confirmations to
// the subscription bookkeeping and messages to the users' workers, and
// watches the connection: a quiet connection is pinged, and one that does
// not answer is dropped, which makes go-redis reconnect and re-subscribe.
func (b *Broker) receive() {
	defer b.wg.Done()
	var (
		awaitingPong bool
		lost         bool
		up           bool // as the connections gauge says
		backoff      time.Duration
	)
	for {
		msg, err := b.next(awaitingPong)
		if b.closed() {
			return
		}
		switch {
		case err == nil:
			if lost {
				b.opts.Logger.Info("redis pub/sub connection restored")
				lost = false
			}
			if !up {
				b.metrics.connections.WithLabelValues(defaultShard).Set(1)
				up = true
			}
			awaitingPong, backoff = false, 0
			b.route(msg)
		case !awaitingPong && isTimeout(err):
			awaitingPong = b.ping()
		default:
			if !lost {
				b.opts.Logger.Warn("redis pub/sub connection lost; resubscribing", "err", err)
				lost = true
			}
			b.metrics.connections.WithLabelValues(defaultShard).Set(0)
			up = false
			awaitingPong = false
			b.connectionLost()
			// go-redis has usually reconnected within the failed read, so
			// the first retry is immediate; only repeated failures wait.
			if !b.sleep(backoff) {
				return
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
		}
	}
}

// next reads one message. While a ping is unanswered the read is strict:
// its deadline comes from the context, which go-redis treats as a broken
// connection when it passes, so it reconnects; otherwise a timeout only
// says the connection was quiet.
func (b *Broker) next(strict bool) (any, error) {
	if !strict {
		return b.ps.ReceiveTimeout(b.ctx, b.opts.HealthCheckInterval)
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.HealthCheckInterval)
	defer cancel()
	return b.ps.ReceiveTimeout(ctx, 0)
}

// ping asks a quiet connection to prove itself; it reports whether a pong
// is now awaited.
func (b *Broker) ping() bool {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	if err := b.ps.Ping(ctx); err != nil {
		b.opts.Logger.Debug("redis pub/sub ping failed", "err", err)
		b.connectionLostLocked()
		return false
	}
	return true
}

func (b *Broker) connectionLost() {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	b.connectionLostLocked()
}

// sleep waits d unless the broker closes first.
func (b *Broker) sleep(d time.Duration) bool {
	if d <= 0 {
		return !b.closed()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

func (b *Broker) route(msg any) {
	switch m := msg.(type) {
	case *redis.Message:
		b.onMessage(m)
	case *redis.Subscription:
		switch m.Kind {
		case "subscribe", "ssubscribe":
			b.onSubscribed(m.Channel)
		case "unsubscribe", "sunsubscribe":
			b.onUnsubscribed(m.Channel)
		}
	}
}

// onMessage hands a published event to its user's worker, if the node is
// subscribed to that user.
func (b *Broker) onMessage(m *redis.Message) {
	user, ok := b.keys.userOf(m.Channel)
	if !ok {
		return
	}
	if us := b.current(user); us != nil {
		b.dispatch(job{kind: jobMessage, sub: us, payload: m.Payload})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
