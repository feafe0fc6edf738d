package redisbroker

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/redisslot"
)

// Sharded pub/sub on a Redis Cluster.
//
// A sharded channel lives on the primary owning its slot, and one
// connection can only subscribe to channels of slots its node owns. The
// broker keeps one pub/sub connection per primary (a shard) and sends each
// user's SSUBSCRIBE on the connection of the primary owning the user's
// slot, one channel per command. go-redis's own re-subscription is never
// relied on: it sends every channel of a connection in one SSUBSCRIBE,
// which a Cluster refuses across slots. Instead, any error on a shard's
// connection closes that connection for good, and its users are placed
// again, by a freshly read slot map, on the connection of their slot's
// current owner. The same happens to a user whose channel Redis itself
// unsubscribed (a SUNSUBSCRIBE the node did not ask for: its slot moved) and
// to users whose slot changed owner in the periodic refresh. The
// subscription confirmation on the new connection starts a backfill from
// the user's last delivered sequence, so every move is closed without loss.
//
// Everything here is guarded by Broker.psMu, which also orders commands
// with the bookkeeping of the confirmations they expect, as in
// subscribe.go; a channelState's shard says which connection its
// confirmations are expected from, and confirmations from any other are
// ignored.

// topologyInterval is how often the slot map is reread to move users whose
// slot changed owner without the node being told.
const topologyInterval = 2 * time.Second

// shard is the node's pub/sub connection to one primary.
type shard struct {
	addr string
	ps   *redis.PubSub
	dead bool // closed after an error; its users are placed elsewhere
}

type clusterSubs struct {
	cc      *redis.ClusterClient
	owners  []string                 // slot -> primary address; nil until read
	shards  map[string]*shard        // live shards by address
	clients map[string]*redis.Client // node clients by address, kept for reuse
	kick    chan struct{}            // asks the topology loop to run now
}

func newClusterSubs(cc *redis.ClusterClient) *clusterSubs {
	return &clusterSubs{
		cc:      cc,
		shards:  make(map[string]*shard),
		clients: make(map[string]*redis.Client),
		kick:    make(chan struct{}, 1),
	}
}

// refreshSoon asks the topology loop for a pass.
func (c *clusterSubs) refreshSoon() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// readSlots reads the slot map from the Cluster.
func (b *Broker) readSlots(ctx context.Context) ([]string, error) {
	slots, err := b.cl.cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	owners := make([]string, redisslot.Count)
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		for i := max(s.Start, 0); i <= s.End && i < redisslot.Count; i++ {
			owners[i] = s.Nodes[0].Addr
		}
	}
	return owners, nil
}

// shardForLocked returns the live connection to the primary owning user's
// slot, opening it if needed. The caller holds psMu.
func (b *Broker) shardForLocked(ctx context.Context, user string) (*shard, error) {
	c := b.cl
	if c.owners == nil {
		owners, err := b.readSlots(ctx)
		if err != nil {
			return nil, err
		}
		c.owners = owners
	}
	addr := c.owners[redisslot.Of(b.keys.channel(user))]
	if addr == "" {
		return nil, errNoOwner
	}
	if sh := c.shards[addr]; sh != nil {
		return sh, nil
	}
	cl := c.clients[addr]
	if cl == nil {
		o := c.cc.Options()
		cl = redis.NewClient(&redis.Options{
			Addr: addr, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
			Dialer: o.Dialer, Protocol: o.Protocol, DialTimeout: o.DialTimeout,
			ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: 1, MaxRetries: -1,
		})
		c.clients[addr] = cl
	}
	sh := &shard{addr: addr, ps: cl.SSubscribe(b.ctx)}
	c.shards[addr] = sh
	b.metrics.connections.WithLabelValues(addr).Set(1)
	b.wg.Add(1)
	go b.receiveShard(sh)
	return sh, nil
}

// sendSubscribeCluster writes SSUBSCRIBE for us on its owner's connection.
// The caller holds psMu. It reports whether there is nothing left to send.
func (b *Broker) sendSubscribeCluster(ctx context.Context, us *userSub) bool {
	sh, err := b.shardForLocked(ctx, us.user)
	if err != nil {
		b.opts.Logger.Debug("redis cluster slot map unavailable; subscribing again", "user", us.user, "err", err)
		b.cl.owners = nil
		return false
	}
	b.mu.Lock()
	cs := b.chans[us.user]
	if cs != nil && cs.sub == us && cs.shard != sh {
		// Confirmations owed by another connection are not awaited here.
		cs.shard, cs.unsubPending = sh, 0
	}
	b.mu.Unlock()
	if err := sh.ps.SSubscribe(ctx, b.keys.channel(us.user)); err != nil {
		b.opts.Logger.Debug("redis subscribe failed; sending again", "user", us.user, "shard", sh.addr, "err", err)
		b.killShardLocked(sh, err)
		return false
	}
	return true
}

// sendUnsubscribeCluster writes SUNSUBSCRIBE for user on the connection its
// subscription went to. The caller holds psMu.
func (b *Broker) sendUnsubscribeCluster(ctx context.Context, user string, sh *shard) {
	if sh == nil || sh.dead {
		return
	}
	if err := sh.ps.SUnsubscribe(ctx, b.keys.channel(user)); err != nil {
		b.opts.Logger.Debug("redis unsubscribe failed", "user", user, "shard", sh.addr, "err", err)
		b.killShardLocked(sh, err)
	}
}

// killShardLocked closes sh after an error and leaves its users to be
// placed again by the topology loop. The caller holds psMu.
func (b *Broker) killShardLocked(sh *shard, err error) {
	if sh.dead {
		return
	}
	if !b.closed() {
		b.opts.Logger.Warn("redis pub/sub connection lost; resubscribing its channels", "shard", sh.addr, "err", err)
	}
	sh.dead = true
	_ = sh.ps.Close()
	c := b.cl
	if c.shards[sh.addr] == sh {
		delete(c.shards, sh.addr)
		b.metrics.connections.DeleteLabelValues(sh.addr)
	}
	c.owners = nil // the slot map may have changed with it
	b.mu.Lock()
	for user, cs := range b.chans {
		if cs.shard != sh {
			continue
		}
		cs.shard, cs.unsubPending = nil, 0
		if cs.sub == nil {
			delete(b.chans, user)
		}
	}
	b.mu.Unlock()
	c.refreshSoon()
}

// receiveShard reads one shard's connection until it fails or the broker
// closes. A quiet connection is pinged; one that does not answer, or any
// error at all (including a MOVED for a subscription sent to a former
// owner), ends the connection.
func (b *Broker) receiveShard(sh *shard) {
	defer b.wg.Done()
	awaitingPong := false
	for {
		var msg any
		var err error
		if awaitingPong {
			ctx, cancel := context.WithTimeout(b.ctx, b.opts.HealthCheckInterval)
			msg, err = sh.ps.ReceiveTimeout(ctx, 0)
			cancel()
		} else {
			msg, err = sh.ps.ReceiveTimeout(b.ctx, b.opts.HealthCheckInterval)
		}
		if b.closed() {
			return
		}
		switch {
		case err == nil:
			awaitingPong = false
			b.routeShard(sh, msg)
			continue
		case !awaitingPong && isTimeout(err):
			b.psMu.Lock()
			if sh.dead {
				b.psMu.Unlock()
				return
			}
			ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
			err = sh.ps.Ping(ctx)
			cancel()
			if err == nil {
				awaitingPong = true
				b.psMu.Unlock()
				continue
			}
			b.killShardLocked(sh, err)
			b.psMu.Unlock()
			return
		}
		b.psMu.Lock()
		b.killShardLocked(sh, err)
		b.psMu.Unlock()
		return
	}
}

func (b *Broker) routeShard(sh *shard, msg any) {
	switch m := msg.(type) {
	case *redis.Message:
		b.onMessage(m)
	case *redis.Subscription:
		switch m.Kind {
		case "ssubscribe":
			b.onSubscribedOn(sh, m.Channel)
		case "sunsubscribe":
			b.onUnsubscribedOn(sh, m.Channel)
		}
	}
}

// onUnsubscribedOn handles a SUNSUBSCRIBE from sh: the confirmation of one
// the node sent, or, when none is awaited while the user is still
// subscribed, Redis dropping the channel because its slot moved away; the
// user is then subscribed again on the slot's new owner.
func (b *Broker) onUnsubscribedOn(sh *shard, ch string) {
	user, ok := b.keys.userOf(ch)
	if !ok {
		return
	}
	b.psMu.Lock()
	defer b.psMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := b.chans[user]
	if cs == nil || cs.shard != sh {
		return
	}
	if cs.unsubPending > 0 {
		cs.unsubPending--
		if cs.sub == nil && cs.unsubPending == 0 {
			delete(b.chans, user)
		}
		return
	}
	if cs.sub != nil {
		b.opts.Logger.Info("redis moved a channel's slot; resubscribing on its new owner", "user", user, "shard", sh.addr)
		cs.shard = nil
		b.cl.owners = nil
		b.cl.refreshSoon()
	}
}

// topologyLoop places users whose channel has no live connection, or whose
// slot now belongs to another primary, on their owner's connection. It runs
// when asked and every topologyInterval.
func (b *Broker) topologyLoop() {
	defer b.wg.Done()
	tick := time.NewTicker(topologyInterval)
	defer tick.Stop()
	backoff := minBackoff
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.cl.kick:
		case <-tick.C:
		}
		for !b.placeAll() {
			if !b.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
		backoff = minBackoff
	}
}

// placeAll rereads the slot map and subscribes every user not on its
// owner's live connection there. It reports whether all were placed.
func (b *Broker) placeAll() bool {
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	owners, err := b.readSlots(ctx)
	if err != nil {
		b.opts.Logger.Debug("redis cluster slot map unavailable", "err", err)
		return false
	}
	b.psMu.Lock()
	defer b.psMu.Unlock()
	b.cl.owners = owners
	b.metrics.refreshes.Inc()
	b.mu.RLock()
	var move []*userSub
	for user, cs := range b.chans {
		if cs.sub == nil {
			continue
		}
		if cs.shard == nil || cs.shard.dead || cs.shard.addr != owners[redisslot.Of(b.keys.channel(user))] {
			move = append(move, cs.sub)
		}
	}
	b.mu.RUnlock()
	// A primary that fails once is not tried again in this pass: each try
	// may wait for a dial or write timeout, with psMu held.
	ok := true
	failed := make(map[string]bool)
	for _, us := range move {
		if b.closed() {
			return true
		}
		addr := owners[redisslot.Of(b.keys.channel(us.user))]
		if failed[addr] {
			continue
		}
		if !b.sendSubscribeCluster(ctx, us) {
			ok = false
			failed[addr] = true
			b.cl.owners = owners // a failure forgets the map; it is fresh
		}
	}
	return ok
}

// closeCluster closes every shard's connection and node client.
func (b *Broker) closeCluster() {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	for _, sh := range b.cl.shards {
		sh.dead = true
		_ = sh.ps.Close()
	}
	for _, cl := range b.cl.clients {
		_ = cl.Close()
	}
}

var errNoOwner = errors.New("no primary owns the slot")
