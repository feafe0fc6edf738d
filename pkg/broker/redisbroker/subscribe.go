package redisbroker

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// How subscriptions are matched with Redis's confirmations.
//
// A user's channel is subscribed when its count goes from 0 to 1 and
// unsubscribed when it drops back to 0; each such period is a generation
// (a userSub). Redis answers SUBSCRIBE and UNSUBSCRIBE in the order they
// were sent, so for one channel the confirmations come as s, u, s, u…
// When a user leaves and comes back before the "u" arrived, the "s" of the
// old generation is still on its way and must not activate the new one:
// channelState counts the UNSUBSCRIBEs not yet confirmed, and a subscribe
// confirmation seen while that count is non-zero belongs to an older
// generation.
//
// A subscribe confirmation for a generation that is already active means
// go-redis re-subscribed on a new connection after losing the old one: the
// worker then reads what was published meanwhile from the stream.
//
// A lost connection loses the confirmations still in flight, so every error
// from the pub/sub connection resets the counts (connectionLost). psMu
// serialises commands, their bookkeeping and that reset with the handling
// of confirmations, so a confirmation read from the new connection is never
// judged by counts of the old one.

// channelState is the node's view of one user's channel.
type channelState struct {
	sub          *userSub // current generation; nil once unsubscribed
	unsubPending int      // UNSUBSCRIBEs sent whose confirmation has not arrived
	shard        *shard   // on a Cluster, the connection confirmations come from
}

// userSub is one generation of a user's subscription on this node.
type userSub struct {
	user string
	refs int // guarded by Broker.mu

	confirmed atomic.Bool // Redis confirmed it; set by a receive loop
	gone      atomic.Bool // its last Unsubscribe happened; its events are dropped

	ready chan struct{} // closed by the worker once active, or failed
	err   error         // why activation failed; written before ready is closed

	// Owned by the user's worker once activated: the position after which
	// everything is delivered. Until the first delivery it is the head read
	// right after Redis confirmed the subscription.
	pos       notification.Cursor
	delivered bool
}

// Subscribe makes this node receive user's events through the handler. It
// returns once Redis has confirmed the subscription and the node has read
// the user's head, so events published afterwards are delivered. It waits
// at most Options.SubscribeTimeout.
func (b *Broker) Subscribe(ctx context.Context, user string) error {
	if err := checkUser(user); err != nil {
		return fmt.Errorf("redisbroker subscribe: %w", err)
	}
	if b.closed() {
		return fmt.Errorf("redisbroker subscribe: %w", broker.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.SubscribeTimeout)
	defer cancel()
	us, fresh := b.acquire(user)
	var err error
	if fresh {
		err = b.activate(ctx, us)
	} else {
		err = b.await(ctx, us)
	}
	if err != nil {
		b.release(us)
		return fmt.Errorf("redisbroker subscribe %q: %w", user, err)
	}
	return nil
}

// acquire counts one more subscriber of user; fresh reports a new
// generation, whose SUBSCRIBE the caller sends.
func (b *Broker) acquire(user string) (us *userSub, fresh bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := b.chans[user]
	if cs == nil {
		cs = &channelState{}
		b.chans[user] = cs
	}
	if cs.sub == nil {
		cs.sub = &userSub{user: user, ready: make(chan struct{})}
		fresh = true
	}
	cs.sub.refs++
	return cs.sub, fresh
}

// activate sends the SUBSCRIBE of a new generation and waits for it to be
// active. A failed write is sent again: go-redis replaces the broken
// connection inside the failing call, re-subscribing only the channels it
// knew before this one.
func (b *Broker) activate(ctx context.Context, us *userSub) error {
	backoff := 50 * time.Millisecond
	for !b.sendSubscribe(us) {
		// Even if a stray confirmation activated us meanwhile, the command
		// must reach Redis: only it makes the subscription survive.
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		case <-b.ctx.Done():
			return broker.ErrClosed
		}
		backoff = min(2*backoff, time.Second)
	}
	return b.await(ctx, us)
}

// sendSubscribe writes SUBSCRIBE for us unless it is no longer the current
// generation. It reports whether there is nothing left to send.
func (b *Broker) sendSubscribe(us *userSub) bool {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	if us.gone.Load() || b.closed() {
		return true
	}
	// The command must not die with the caller's context: a cancelled
	// write counts as a broken connection and would reconnect the node.
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	if b.cl != nil {
		return b.sendSubscribeCluster(ctx, us)
	}
	ch := b.keys.channel(us.user)
	var err error
	if b.opts.Sharded {
		err = b.ps.SSubscribe(ctx, ch)
	} else {
		err = b.ps.Subscribe(ctx, ch)
	}
	if err != nil {
		b.opts.Logger.Debug("redis subscribe failed; sending again", "user", us.user, "err", err)
		b.connectionLostLocked()
		return false
	}
	return true
}

// await waits until us is active.
func (b *Broker) await(ctx context.Context, us *userSub) error {
	select {
	case <-us.ready:
		return us.err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return broker.ErrClosed
	}
}

// Unsubscribe undoes one Subscribe; the last one leaves the channel. It
// does not wait for Redis to confirm.
func (b *Broker) Unsubscribe(_ context.Context, user string) error {
	b.mu.RLock()
	var us *userSub
	if cs := b.chans[user]; cs != nil {
		us = cs.sub
	}
	b.mu.RUnlock()
	if us != nil {
		b.release(us)
	}
	return nil
}

// release drops one reference to us; the last one ends the generation and
// sends UNSUBSCRIBE.
func (b *Broker) release(us *userSub) {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	b.mu.Lock()
	cs := b.chans[us.user]
	if cs == nil || cs.sub != us {
		b.mu.Unlock()
		return
	}
	us.refs--
	if us.refs > 0 {
		b.mu.Unlock()
		return
	}
	cs.sub = nil
	us.gone.Store(true)
	cs.unsubPending++
	sh := cs.shard
	if b.cl != nil && (sh == nil || sh.dead) {
		// No connection carries the channel: nothing to send or await.
		delete(b.chans, us.user)
		sh = nil
	}
	b.mu.Unlock()

	if b.closed() {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	if b.cl != nil {
		b.sendUnsubscribeCluster(ctx, us.user, sh)
		return
	}
	ch := b.keys.channel(us.user)
	var err error
	if b.opts.Sharded {
		err = b.ps.SUnsubscribe(ctx, ch)
	} else {
		err = b.ps.Unsubscribe(ctx, ch)
	}
	// On error go-redis has already forgotten the channel and replaced the
	// connection, so the channel is not subscribed any more either way.
	if err != nil {
		b.opts.Logger.Debug("redis unsubscribe failed", "user", us.user, "err", err)
		b.connectionLostLocked()
	}
}

// onSubscribed handles a subscribe confirmation: it activates a pending
// generation, or, for an active one, starts a backfill after go-redis
// re-subscribed on a new connection.
func (b *Broker) onSubscribed(ch string) { b.onSubscribedOn(nil, ch) }

// onSubscribedOn handles a subscribe confirmation read from sh (nil for
// the single connection); one from a connection the channel is no longer
// expected on is ignored.
func (b *Broker) onSubscribedOn(sh *shard, ch string) {
	user, ok := b.keys.userOf(ch)
	if !ok {
		return
	}
	b.psMu.Lock()
	b.mu.Lock()
	var us *userSub
	if cs := b.chans[user]; cs != nil && cs.unsubPending == 0 && cs.shard == sh {
		us = cs.sub
	}
	kind := jobResync
	if us != nil && us.confirmed.CompareAndSwap(false, true) {
		kind = jobActivate
	}
	b.mu.Unlock()
	b.psMu.Unlock()
	if us == nil {
		return // an older generation's confirmation
	}
	if kind == jobResync {
		b.metrics.resubscribe.Inc()
	}
	b.dispatch(job{kind: kind, sub: us})
}

// onUnsubscribed handles an unsubscribe confirmation.
func (b *Broker) onUnsubscribed(ch string) {
	user, ok := b.keys.userOf(ch)
	if !ok {
		return
	}
	b.psMu.Lock()
	defer b.psMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := b.chans[user]
	if cs == nil {
		return
	}
	if cs.unsubPending > 0 {
		cs.unsubPending--
	}
	if cs.sub == nil && cs.unsubPending == 0 {
		delete(b.chans, user)
	}
}

// current returns the active generation of user's subscription, or nil.
func (b *Broker) current(user string) *userSub {
	b.mu.RLock()
	var us *userSub
	if cs := b.chans[user]; cs != nil {
		us = cs.sub
	}
	b.mu.RUnlock()
	if us == nil || !us.confirmed.Load() {
		return nil
	}
	return us
}

// connectionLostLocked forgets the confirmations the lost connection still
// owed. The caller holds psMu.
func (b *Broker) connectionLostLocked() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for user, cs := range b.chans {
		cs.unsubPending = 0
		if cs.sub == nil {
			delete(b.chans, user)
		}
	}
}
