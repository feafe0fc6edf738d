// Package redisstore keeps Herald's shared cluster state in Redis: which
// nodes hold sessions of which users (presence that forgets dead nodes),
// idempotency keys of the server API, and a small key/value space.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options tune a Store.
type Options struct {
	Prefix      string        // key prefix (default "herald:")
	NodeID      string        // readable node name; a random suffix makes each process unique
	PresenceTTL time.Duration // a silent node's sessions vanish after this (default 15s)
	Logger      *slog.Logger
}

// Store is the Redis-backed cluster state of one node.
type Store struct {
	c        redis.UniversalClient
	opts     Options
	instance string // this process's presence identity

	mu    sync.Mutex
	local map[string]int // this node's sessions per user, to restore after Redis loses them

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("redisstore: not found")

// New returns a store and starts the node's liveness heartbeat.
func New(c redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "herald:"
	}
	if opts.PresenceTTL <= 0 {
		opts.PresenceTTL = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	inst := hex.EncodeToString(b)
	if opts.NodeID != "" {
		inst = opts.NodeID + "-" + inst
	}
	s := &Store{c: c, opts: opts, instance: inst, local: make(map[string]int),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.heartbeat()
	return s
}

// Instance returns the node's presence identity.
func (s *Store) Instance() string { return s.instance }

func (s *Store) nodeKey(inst string) string { return s.opts.Prefix + "node:" + inst }
func (s *Store) presenceKey(user string) string {
	return s.opts.Prefix + "{" + user + "}:presence"
}

// heartbeat keeps the node's liveness key alive; when the process dies the
// key expires and other nodes stop counting its sessions. When the key was
// gone (Redis restarted without its data, or this node stalled past the
// TTL), the node's counts may be gone too, and are written again.
func (s *Store) heartbeat() {
	defer close(s.done)
	t := time.NewTicker(s.opts.PresenceTTL / 3)
	defer t.Stop()
	first := true
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.PresenceTTL/3)
		_, err := s.c.SetArgs(ctx, s.nodeKey(s.instance), "1", redis.SetArgs{TTL: s.opts.PresenceTTL, Get: true}).Result()
		switch {
		case errors.Is(err, redis.Nil) && !first:
			s.restore(ctx)
		case err != nil && !errors.Is(err, redis.Nil):
			s.opts.Logger.Warn("presence heartbeat failed", "err", err)
		}
		if err == nil || errors.Is(err, redis.Nil) {
			first = false
		}
		cancel()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// restore writes this node's session counts again.
func (s *Store) restore(ctx context.Context) {
	s.mu.Lock()
	counts := make(map[string]int, len(s.local))
	for u, n := range s.local {
		counts[u] = n
	}
	s.mu.Unlock()
	pipe := s.c.Pipeline()
	for u, n := range counts {
		pipe.HSet(ctx, s.presenceKey(u), s.instance, n)
		pipe.Expire(ctx, s.presenceKey(u), 24*time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.opts.Logger.Warn("presence restore failed", "err", err)
		return
	}
	s.opts.Logger.Info("presence restored after the liveness key was lost", "users", len(counts))
}

func (s *Store) count(user string, d int) {
	s.mu.Lock()
	if n := s.local[user] + d; n > 0 {
		s.local[user] = n
	} else {
		delete(s.local, user)
	}
	s.mu.Unlock()
}

// leaveScript decrements a node's count and removes the field at zero, in
// one step so a concurrent Join is never lost.
var leaveScript = redis.NewScript(`
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n`)

// Join counts a new session of user on this node.
func (s *Store) Join(ctx context.Context, user string) error {
	s.count(user, 1)
	key := s.presenceKey(user)
	pipe := s.c.TxPipeline()
	pipe.HIncrBy(ctx, key, s.instance, 1)
	pipe.Expire(ctx, key, 24*time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		s.count(user, -1)
		return fmt.Errorf("redisstore presence join: %w", err)
	}
	return nil
}

// Leave uncounts a session of user on this node.
func (s *Store) Leave(ctx context.Context, user string) error {
	s.count(user, -1)
	if err := leaveScript.Run(ctx, s.c, []string{s.presenceKey(user)}, s.instance).Err(); err != nil {
		return fmt.Errorf("redisstore presence leave: %w", err)
	}
	return nil
}

// Count returns the user's sessions on live nodes, and forgets the counts
// of nodes whose liveness key expired.
func (s *Store) Count(ctx context.Context, user string) (int, error) {
	key := s.presenceKey(user)
	fields, err := s.c.HGetAll(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore presence count: %w", err)
	}
	if len(fields) == 0 {
		return 0, nil
	}
	insts := make([]string, 0, len(fields))
	keys := make([]string, 0, len(fields))
	for inst := range fields {
		insts = append(insts, inst)
		keys = append(keys, s.nodeKey(inst))
	}
	// One EXISTS per node keeps this cluster-safe (node keys span slots).
	pipe := s.c.Pipeline()
	exists := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		exists[i] = pipe.Exists(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redisstore presence count: %w", err)
	}
	total := 0
	var dead []string
	for i, inst := range insts {
		if exists[i].Val() == 0 {
			dead = append(dead, inst)
			continue
		}
		n, _ := strconv.Atoi(fields[inst])
		if n > 0 {
			total += n
		}
	}
	if len(dead) > 0 {
		if err := s.c.HDel(ctx, key, dead...).Err(); err != nil {
			s.opts.Logger.Debug("presence cleanup failed", "err", err)
		}
	}
	return total, nil
}

func (s *Store) idemKey(key string) string { return s.opts.Prefix + "idem:" + key }

// Reserve claims an idempotency key for ttl: fresh reports the caller owns
// it; otherwise prior is the stored result, or nil while in progress.
func (s *Store) Reserve(ctx context.Context, key string, ttl time.Duration) (prior []byte, fresh bool, err error) {
	k := s.idemKey(key)
	ok, err := s.c.SetNX(ctx, k, "p", ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redisstore reserve: %w", err)
	}
	if ok {
		return nil, true, nil
	}
	v, err := s.c.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		// Expired between the two calls: try once more.
		ok, err = s.c.SetNX(ctx, k, "p", ttl).Result()
		if err != nil {
			return nil, false, fmt.Errorf("redisstore reserve: %w", err)
		}
		return nil, ok, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redisstore reserve: %w", err)
	}
	if len(v) > 0 && v[0] == 'd' {
		return v[1:], false, nil
	}
	return nil, false, nil
}

// Complete stores the result of key for ttl.
func (s *Store) Complete(ctx context.Context, key string, result []byte, ttl time.Duration) error {
	v := make([]byte, 0, len(result)+1)
	v = append(append(v, 'd'), result...)
	if err := s.c.Set(ctx, s.idemKey(key), v, ttl).Err(); err != nil {
		return fmt.Errorf("redisstore complete: %w", err)
	}
	return nil
}

// Release forgets key so the request can be retried.
func (s *Store) Release(ctx context.Context, key string) error {
	if err := s.c.Del(ctx, s.idemKey(key)).Err(); err != nil {
		return fmt.Errorf("redisstore release: %w", err)
	}
	return nil
}

// Get returns the value under key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.c.Get(ctx, s.opts.Prefix+"kv:"+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore get: %w", err)
	}
	return v, nil
}

// Put stores value under key.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if err := s.c.Set(ctx, s.opts.Prefix+"kv:"+key, value, 0).Err(); err != nil {
		return fmt.Errorf("redisstore put: %w", err)
	}
	return nil
}

// Close stops the heartbeat and removes the node's liveness key, so its
// sessions stop counting at once on a clean shutdown.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.c.Del(ctx, s.nodeKey(s.instance)).Err()
	})
	return nil
}

// StopHeartbeat stops refreshing the liveness key without removing it, as
// a killed process would; for tests of dead-node handling.
func (s *Store) StopHeartbeat() {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
	})
}
