// Package ratelimit owns Herald's rate limits: token buckets kept per key
// (a user id), for requests and frames a client may send only so often.
// (Warnings that must not flood the log are pkg/lograte's.)
//
// A Limiter's memory is bounded by the keys active lately: a bucket that
// has filled up again is indistinguishable from no bucket, and is dropped
// by a sweep that each shard runs at most once per refill time, on the
// calls that use it (no goroutine of its own).
package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

const shardCount = 32

// Limiter is a token bucket per key: each key may take Burst tokens at
// once and Rate per second after that. The zero or nil Limiter, or one with
// a rate of zero, allows everything. It is safe for concurrent use; keys
// spread over shards, so different keys rarely contend on a lock.
type Limiter struct {
	rate   float64 // tokens per second
	burst  float64
	refill time.Duration // time for an empty bucket to fill up
	now    func() time.Time
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	nextSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// New returns a Limiter allowing rate tokens per second per key, up to
// burst at once. rate <= 0 returns nil, which allows everything; burst is
// at least 1.
func New(rate float64, burst int) *Limiter {
	return newWithClock(rate, burst, time.Now)
}

func newWithClock(rate float64, burst int, now func() time.Time) *Limiter {
	if rate <= 0 {
		return nil
	}
	burst = max(burst, 1)
	l := &Limiter{
		rate:   rate,
		burst:  float64(burst),
		refill: time.Duration(float64(burst) / rate * float64(time.Second)),
		now:    now,
		seed:   maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// Allow takes n tokens from key's bucket and reports whether it held them.
// When it did not, nothing is taken and retry is how long until it will
// (what a Retry-After header says). n above the burst counts as the burst:
// a full bucket lets any single request through.
func (l *Limiter) Allow(key string, n int) (ok bool, retry time.Duration) {
	if l == nil {
		return true, 0
	}
	need := min(float64(max(n, 0)), l.burst)
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, key)%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.After(sh.nextSweep) {
		sh.sweep(l, now)
	}
	b := sh.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		sh.buckets[key] = b
	} else {
		b.tokens = l.level(b, now)
		b.at = now
	}
	if b.tokens >= need {
		b.tokens -= need
		return true, 0
	}
	wait := time.Duration(math.Ceil((need - b.tokens) / l.rate * float64(time.Second)))
	return false, wait
}

// level is b's token count at now.
func (l *Limiter) level(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		return min(l.burst, b.tokens+d.Seconds()*l.rate)
	}
	return b.tokens
}

// sweep forgets the buckets that are full again.
func (sh *shard) sweep(l *Limiter, now time.Time) {
	for k, b := range sh.buckets {
		if l.level(b, now) >= l.burst {
			delete(sh.buckets, k)
		}
	}
	sh.nextSweep = now.Add(max(l.refill, time.Second))
}

// Len is how many keys have a bucket now (for tests and metrics).
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
