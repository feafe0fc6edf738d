// Package redisbroker is the cluster broker.Broker. It owns Herald's
// per-user histories and fan-out in Redis:
//
//   - each user's history is a stream of envelopes (IDs 0-<seq>) beside a
//     meta hash holding the history's epoch and newest seq; one Lua script
//     appends an event and publishes it, so history and fan-out never
//     disagree;
//   - each user has a pub/sub channel, and a node subscribes only to the
//     channels of users with sessions on it;
//   - every key and the channel of one user carry the hash tag {user}, so
//     they live in one cluster slot.
//
// Pub/sub is at-most-once and drops everything across a reconnect. Because
// a user's events carry contiguous sequence numbers, a node notices what it
// missed and reads it from the stream before delivering further, so the
// Handler sees each subscribed user's events in order, once, without gaps.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
)

// Options tune a Broker. The zero value is usable.
type Options struct {
	// Prefix starts every key and channel name (default "herald:"). It must
	// not contain braces, which would change the cluster hash tag.
	Prefix string

	// Retention bounds each user's history: the stream is trimmed to
	// MaxCount entries and both keys expire MaxAge after the last publish.
	Retention broker.Retention

	// Sharded uses SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub), so a
	// message travels only within the shard owning the user's slot. Without
	// Cluster all channels share one connection, so it needs a client whose
	// pub/sub connection reaches every channel's shard: a standalone server
	// or a one-shard cluster.
	Sharded bool

	// Cluster is the Redis Cluster behind the client (the client may wrap
	// it, as an autopipeliner does). With it the broker always uses sharded
	// pub/sub, over one connection per primary that it manages itself (see
	// cluster.go); Sharded is then implied. A client over a Cluster needs
	// Cluster or Sharded: without either the broker publishes events of
	// several users in one script call, which a Cluster refuses.
	Cluster *redis.ClusterClient

	// Direct is the client under the one the broker was given, when that
	// one is an autopipeliner: publishes followed by WAIT go through it,
	// since WAIT covers only the writes of its own connection, which an
	// autopipeliner does not keep together. Nil uses the given client. On a
	// Cluster the broker writes to each primary's own client instead.
	Direct redis.UniversalClient

	// MinReplicas is how many replicas must acknowledge a publish before
	// it succeeds (WAIT after each pipeline of publishes to a primary),
	// counted among the replicas connected to that primary (or connected
	// until shortly before: see replicaGrace): a primary with fewer, such
	// as a single Redis without replicas, needs only those.
	// A publish that too few acknowledge within ReplicaTimeout fails with
	// broker.ErrUnavailable; it is appended and published all the same,
	// and the sender's retry of the same notification id is a no-op that
	// answers the first cursor. 0 turns WAIT off.
	MinReplicas int

	// ReplicaTimeout bounds the WAIT for replicas (default 1s).
	ReplicaTimeout time.Duration

	// SubscribeTimeout bounds how long Subscribe waits for Redis to confirm
	// the subscription (default 10s).
	SubscribeTimeout time.Duration

	// HealthCheckInterval is how long the pub/sub connection may stay quiet
	// before it is pinged; a ping unanswered for as long again counts as a
	// dead connection (default 15s).
	HealthCheckInterval time.Duration

	// Logger receives connection losses and unrecoverable gaps (default
	// slog.Default()).
	Logger *slog.Logger

	// Metrics registers the pub/sub metrics (connections by shard,
	// topology refreshes, resubscriptions, backfills); nil registers none.
	Metrics prometheus.Registerer
}

// Defaults for Options.
const (
	DefaultPrefix              = "herald:"
	DefaultSubscribeTimeout    = 10 * time.Second
	DefaultHealthCheckInterval = 15 * time.Second
	DefaultReplicaTimeout      = time.Second
)

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return o, fmt.Errorf("redisbroker: prefix %q must not contain braces", o.Prefix)
	}
	o.Retention = o.Retention.WithDefaults()
	if o.Retention.MaxAge < time.Millisecond {
		return o, fmt.Errorf("redisbroker: retention max age %s is below Redis's millisecond resolution", o.Retention.MaxAge)
	}
	if o.SubscribeTimeout <= 0 {
		o.SubscribeTimeout = DefaultSubscribeTimeout
	}
	if o.HealthCheckInterval <= 0 {
		o.HealthCheckInterval = DefaultHealthCheckInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinReplicas < 0 {
		return o, fmt.Errorf("redisbroker: min replicas %d is negative", o.MinReplicas)
	}
	if o.ReplicaTimeout <= 0 {
		o.ReplicaTimeout = DefaultReplicaTimeout
	}
	return o, nil
}

// opTimeout bounds the broker's own Redis reads (heads and backfills),
// which run on no caller's context.
const opTimeout = 5 * time.Second

// Broker implements broker.Broker over Redis. Its methods are safe for
// concurrent use.
type Broker struct {
	c       redis.UniversalClient
	handler broker.HandlerSlot
	opts    Options
	keys    keyspace
	args    scriptArgs
	anySlot bool // a script call may carry events of any users (see script.go)

	// ps is the node's single pub/sub connection, or on a Cluster cl holds
	// one per primary. psMu orders the commands written to them with the
	// bookkeeping of the confirmations they expect (see subscribe.go).
	ps   *redis.PubSub
	cl   *clusterSubs
	psMu sync.Mutex

	mu    sync.RWMutex
	chans map[string]*channelState // by user

	workers []*worker // see deliver.go
	seed    maphash.Seed

	publishes chan *publishReq // drained in shared pipelines by publishLoop
	replicas  replicaCounts    // by primary, for WAIT; owned by publishLoop

	metrics *metrics

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the receive loop and the workers
	once   sync.Once
}

var _ broker.Broker = (*Broker)(nil)

// New returns a broker that delivers the events of users subscribed on this
// node to handler (nil: the one registered later with RegisterHandler),
// and starts its pub/sub reader. It does not contact Redis
// first: a node may start before Redis is reachable, and Ready tells.
// The client stays the caller's: Close does not close it.
func New(client redis.UniversalClient, handler broker.Handler, opts Options) (*Broker, error) {
	if client == nil {
		return nil, errors.New("redisbroker: a client is required")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	_, isCluster := client.(*redis.ClusterClient)
	if isCluster && opts.Sharded && opts.Cluster == nil {
		return nil, errors.New("redisbroker: sharded pub/sub over a cluster client needs Options.Cluster")
	}
	if opts.Cluster != nil {
		opts.Sharded = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		c: client, opts: opts,
		keys: keyspace{prefix: opts.Prefix},
		args: newScriptArgs(opts),
		// A Cluster (even of one shard) refuses a script whose keys are in
		// different slots.
		anySlot: !isCluster && !opts.Sharded,
		chans:   make(map[string]*channelState),
		ctx:     ctx,
		cancel:  cancel,

		publishes: make(chan *publishReq, 256),
		metrics:   newMetrics(opts.Metrics),
	}
	b.handler.Register(handler)
	b.startWorkers()
	b.wg.Add(2)
	switch {
	case opts.Cluster != nil:
		b.cl = newClusterSubs(opts.Cluster)
		go b.topologyLoop()
	case opts.Sharded:
		b.ps = client.SSubscribe(ctx)
		go b.receive()
	default:
		b.ps = client.Subscribe(ctx)
		go b.receive()
	}
	go b.publishLoop()
	return b, nil
}

// RegisterHandler sets the handler of subscribed users' events.
func (b *Broker) RegisterHandler(h broker.Handler) { b.handler.Register(h) }

// Ready pings Redis.
func (b *Broker) Ready(ctx context.Context) error {
	if b.closed() {
		return broker.ErrClosed
	}
	if err := b.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker ready: %w", err)
	}
	return nil
}

// Close stops the pub/sub reader and the delivery workers and closes the
// pub/sub connection. The handler is not called once Close has returned.
func (b *Broker) Close() error {
	var err error
	b.once.Do(func() {
		b.cancel()
		if b.cl != nil {
			b.closeCluster()
		} else {
			b.psMu.Lock()
			err = b.ps.Close()
			b.psMu.Unlock()
		}
		b.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("redisbroker close: %w", err)
	}
	return nil
}

func (b *Broker) closed() bool { return b.ctx.Err() != nil }

// keyspace names a user's keys and channel. The braces make {user} the
// cluster hash tag, so all of them share one slot.
type keyspace struct{ prefix string }

func (k keyspace) meta(user string) string    { return k.prefix + "{" + user + "}:m" }
func (k keyspace) stream(user string) string  { return k.prefix + "{" + user + "}:h" }
func (k keyspace) channel(user string) string { return k.prefix + "{" + user + "}:c" }

// seen holds the previous generation of the ids the publish script
// recorded for dedupe (see publish.go).
func (k keyspace) seen(user string) string { return k.prefix + "{" + user + "}:d" }

// userOf is the inverse of channel.
func (k keyspace) userOf(ch string) (string, bool) {
	rest, ok := strings.CutPrefix(ch, k.prefix+"{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}:c")
}

func checkUser(user string) error {
	if user == "" {
		return errors.New("redisbroker: empty user id")
	}
	return nil
}
