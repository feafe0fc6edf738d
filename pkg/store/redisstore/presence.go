package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence in Redis: each user has a hash of node id → that node's session
// count (HINCRBY on Join and Leave), and each node keeps a liveness key
// that expires PresenceTTL after its last refresh. Count adds up only the
// nodes whose key exists and deletes the fields of the others, so the
// sessions of a killed node vanish once its key expires.
//
// A live node whose key expired anyway (Redis was unreachable or lost its
// data) writes its own counts again when it notices, from what it knows
// locally; it also does so every reassertEvery, which refreshes the expiry
// of the hashes of long-lived sessions.
const (
	presenceHashTTL = 24 * time.Hour
	reassertEvery   = time.Hour
)

// leaveScript decrements a node's count and removes the field at zero, in
// one step, so a concurrent Join is never lost.
var leaveScript = redis.NewScript(`
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n`)

// Join counts one more session of user on this node.
func (s *Store) Join(ctx context.Context, user string) error {
	if !s.presence.alive.Load() {
		// Counts of a node without a liveness key are ignored and deleted
		// by other nodes: make sure it exists before adding one.
		if err := s.beat(ctx); err != nil {
			return fmt.Errorf("redisstore presence join: %w", err)
		}
	}
	p := &s.presence
	p.rw.RLock()
	defer p.rw.RUnlock()
	key := s.presenceKey(user)
	pipe := s.c.TxPipeline()
	pipe.HIncrBy(ctx, key, s.node, 1)
	pipe.Expire(ctx, key, presenceHashTTL)
	_, err := pipe.Exec(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// The increment may have been applied even so (the reply was
		// lost): let the next heartbeat write the count this node knows.
		if _, known := p.local[user]; !known {
			p.local[user] = 0
		}
		p.dirty = true
		return fmt.Errorf("redisstore presence join: %w", err)
	}
	p.local[user]++
	return nil
}

// Leave counts one session of user on this node less. The local count
// drops even when Redis cannot be told; the heartbeat corrects Redis later.
func (s *Store) Leave(ctx context.Context, user string) error {
	p := &s.presence
	p.rw.RLock()
	defer p.rw.RUnlock()
	p.mu.Lock()
	if p.local[user] > 0 {
		p.local[user]--
	}
	p.mu.Unlock()
	if err := leaveScript.Run(ctx, s.c, []string{s.presenceKey(user)}, s.node).Err(); err != nil {
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
		return fmt.Errorf("redisstore presence leave: %w", err)
	}
	p.mu.Lock()
	if p.local[user] == 0 {
		delete(p.local, user)
	}
	p.mu.Unlock()
	return nil
}

// Count returns the user's sessions on live nodes, and deletes the counts
// of nodes whose liveness key has expired.
func (s *Store) Count(ctx context.Context, user string) (int, error) {
	key := s.presenceKey(user)
	fields, err := s.c.HGetAll(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore presence count: %w", err)
	}
	if len(fields) == 0 {
		return 0, nil
	}
	nodes := make([]string, 0, len(fields))
	liveKeys := make([]string, 0, len(fields))
	for node := range fields {
		nodes = append(nodes, node)
		liveKeys = append(liveKeys, s.liveKey(node))
	}
	alive, err := s.c.MGet(ctx, liveKeys...).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore presence count: %w", err)
	}
	total := 0
	var dead []string
	for i, node := range nodes {
		if alive[i] == nil {
			dead = append(dead, node)
			continue
		}
		if n, err := strconv.Atoi(fields[node]); err == nil && n > 0 {
			total += n
		}
	}
	if len(dead) > 0 {
		if err := s.c.HDel(ctx, key, dead...).Err(); err != nil {
			s.opts.Logger.Debug("presence: dead nodes not removed", "user", user, "err", err)
		}
	}
	return total, nil
}

// heartbeat refreshes the liveness key every PresenceTTL/3 until ctx ends.
func (s *Store) heartbeat(ctx context.Context) {
	defer close(s.done)
	interval := s.opts.PresenceTTL / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		bctx, cancel := context.WithTimeout(ctx, interval)
		err := s.beat(bctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.opts.Logger.Warn("presence heartbeat failed; this node's sessions stop counting if it lasts", "err", err, "ttl", s.opts.PresenceTTL)
			failing = true
		case err == nil && failing:
			s.opts.Logger.Info("presence heartbeat restored")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beat refreshes the liveness key. If the key was gone, other nodes may
// have deleted this node's counts, so they are written again.
func (s *Store) beat(ctx context.Context) error {
	key := s.liveKey(s.node)
	refreshed, err := s.c.SetXX(ctx, key, "1", s.opts.PresenceTTL).Result()
	if err != nil {
		s.presence.alive.Store(false)
		return fmt.Errorf("refresh liveness: %w", err)
	}
	p := &s.presence
	p.mu.Lock()
	due := p.dirty || time.Since(p.lastReassert) >= reassertEvery
	p.mu.Unlock()
	if refreshed && !due {
		s.presence.alive.Store(true)
		return nil
	}
	if err := s.c.Set(ctx, key, "1", s.opts.PresenceTTL).Err(); err != nil {
		return fmt.Errorf("set liveness: %w", err)
	}
	s.presence.alive.Store(true)
	wrote, err := s.reassert(ctx)
	if err != nil {
		return err
	}
	if !refreshed && wrote > 0 {
		// Another node may have judged this one dead just before the key
		// came back and delete the rewritten fields: write them once more
		// on the next beat. A node that had nothing to write (the first
		// beat of a new node) has nothing to lose, and rewriting all its
		// sessions a beat later would cost Redis two commands a session.
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
	}
	return nil
}

// reassert writes this node's counts of all its users again, and removes
// the fields of users whose last Leave did not reach Redis. It returns how
// many users it wrote.
func (s *Store) reassert(ctx context.Context) (int, error) {
	p := &s.presence
	p.rw.Lock()
	defer p.rw.Unlock()
	p.mu.Lock()
	counts := make(map[string]int, len(p.local))
	for user, n := range p.local {
		counts[user] = n
	}
	p.mu.Unlock()

	if len(counts) > 0 {
		pipe := s.c.Pipeline()
		for user, n := range counts {
			key := s.presenceKey(user)
			if n > 0 {
				pipe.HSet(ctx, key, s.node, n)
				pipe.Expire(ctx, key, presenceHashTTL)
			} else {
				pipe.HDel(ctx, key, s.node)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("rewrite presence: %w", err)
		}
	}
	p.mu.Lock()
	for user, n := range p.local {
		if n == 0 {
			delete(p.local, user)
		}
	}
	p.dirty = false
	p.lastReassert = time.Now()
	p.mu.Unlock()
	return len(counts), nil
}
