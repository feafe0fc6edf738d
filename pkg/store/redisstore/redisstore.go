// Package redisstore owns Herald's shared cluster state in Redis, apart from
// the histories (those belong to redisbroker):
//
//   - presence: how many sessions each user has on which node, where the
//     sessions of a node that dies stop counting once its liveness key
//     expires;
//   - idempotency keys of the server API, with the semantics of the
//     embedded store;
//   - a small key/value space for persisted settings.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Prefix starts every key (default "herald:").
	Prefix string

	// NodeID is a readable name for this node in presence hashes; a random
	// suffix keeps every process distinct, so a restarted node never
	// inherits the counts of its previous life.
	NodeID string

	// PresenceTTL is how long a node that stopped refreshing its liveness
	// key (it was killed, or lost Redis) still counts; the key is refreshed
	// every PresenceTTL/3 (default 15s, at least 100ms).
	PresenceTTL time.Duration

	// Logger receives heartbeat failures (default slog.Default()).
	Logger *slog.Logger
}

// Defaults for Options.
const (
	DefaultPrefix      = "herald:"
	DefaultPresenceTTL = 15 * time.Second
	minPresenceTTL     = 100 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.PresenceTTL <= 0 {
		o.PresenceTTL = DefaultPresenceTTL
	}
	o.PresenceTTL = max(o.PresenceTTL, minPresenceTTL)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("redisstore: not found")

// Store is one node's handle on the shared state. Its methods are safe for
// concurrent use.
type Store struct {
	c    redis.UniversalClient
	opts Options
	node string

	presence presenceState

	deviceChecks chan *deviceCheck // drained in pipelines by deviceCheckLoop

	pushKeys [][]string    // due, msg, lease of each pending-push partition
	pushNext atomic.Uint32 // rotates the partition ClaimPush starts at

	ctx    context.Context // ends at Close: background loops stop
	cancel context.CancelFunc
	done   chan struct{} // closed when the heartbeat has stopped
	once   sync.Once
}

// presenceState is what the node knows of its own sessions, so it can
// write them again when Redis lost them (see presence.go).
type presenceState struct {
	alive atomic.Bool // the liveness key is known to exist

	// rw lets Join and Leave run concurrently (read side) and keeps them
	// out while the counts are rewritten wholesale (write side).
	rw sync.RWMutex

	mu           sync.Mutex
	local        map[string]int // this node's sessions by user
	dirty        bool           // Redis may hold wrong counts: rewrite them on the next beat
	lastReassert time.Time
}

// New returns a store for this node and starts its presence heartbeat,
// which runs until Close. It does not wait for Redis: the first Join writes
// the liveness key itself if the heartbeat has not yet. The client stays
// the caller's: Close does not close it.
func New(client redis.UniversalClient, opts Options) *Store {
	opts = opts.withDefaults()
	s := &Store{
		c:    client,
		opts: opts,
		node: newNodeID(opts.NodeID),
		done: make(chan struct{}),

		deviceChecks: make(chan *deviceCheck, maxDeviceCheckPipeline),
		pushKeys:     pushKeySets(opts.Prefix),
	}
	s.presence.local = make(map[string]int)
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx, s.cancel = ctx, cancel
	go s.heartbeat(ctx)
	go s.deviceCheckLoop(ctx)
	return s
}

func newNodeID(name string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	if name != "" {
		return name + "-" + id
	}
	return id
}

// NodeID is the node's identity in presence hashes.
func (s *Store) NodeID() string { return s.node }

// Close stops the heartbeat and deletes the node's liveness key, so its
// sessions stop counting at once on a clean shutdown.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.c.Del(ctx, s.liveKey(s.node)).Err(); err != nil {
			s.opts.Logger.Debug("presence: liveness key not removed; it expires instead", "err", err)
		}
	})
	return nil
}

// Keys. A user's presence hash shares the user's hash tag with the
// broker's keys; the liveness keys share the tag {nodes}, so one MGET reads
// all of them in a cluster. That puts them all on one slot, which is
// fine: each is written once per node per PresenceTTL/3 and they are read
// per presence check, not per notification (unlike the webhook queue and
// the pending pushes, which are partitioned).
func (s *Store) presenceKey(user string) string { return s.opts.Prefix + "{" + user + "}:presence" }
func (s *Store) liveKey(node string) string     { return s.opts.Prefix + "{nodes}:live:" + node }
func (s *Store) idemKey(key string) string      { return s.opts.Prefix + "idem:" + key }
func (s *Store) kvKey(key string) string        { return s.opts.Prefix + "kv:" + key }
