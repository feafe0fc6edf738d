package ratelimit

import (
	"fmt"
	"hash/maphash"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiterAllowsBurstThenRate(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := newWithClock(10, 20, c.now)
	for i := range 20 {
		if ok, _ := l.Allow("alice", 1); !ok {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	ok, retry := l.Allow("alice", 1)
	if ok || retry != 100*time.Millisecond {
		t.Fatalf("past the burst: ok=%v retry=%v, want refused with 100ms", ok, retry)
	}
	ok, retry = l.Allow("alice", 5)
	if ok || retry != 500*time.Millisecond {
		t.Fatalf("5 tokens from empty: ok=%v retry=%v, want 500ms", ok, retry)
	}
	c.advance(500 * time.Millisecond)
	if ok, _ := l.Allow("alice", 5); !ok {
		t.Fatal("5 tokens after 500ms at 10/s refused")
	}
	if ok, _ := l.Allow("alice", 1); ok {
		t.Fatal("a refused request must not have left tokens behind")
	}
}

func TestLimiterKeysAreIndependent(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := newWithClock(1, 3, c.now)
	for range 10 {
		l.Allow("flood", 1000)
	}
	if ok, _ := l.Allow("flood", 1); ok {
		t.Fatal("the flooding key still has tokens")
	}
	if ok, _ := l.Allow("bob", 3); !ok {
		t.Fatal("another key was limited by the flood")
	}
}

func TestLimiterCapsRequestAtBurst(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := newWithClock(1, 10, c.now)
	if ok, _ := l.Allow("u", 1000); !ok {
		t.Fatal("a request larger than the burst must pass a full bucket")
	}
	if ok, retry := l.Allow("u", 1000); ok || retry != 10*time.Second {
		t.Fatalf("ok=%v retry=%v, want the time to fill the burst", ok, retry)
	}
}

func TestLimiterForgetsIdleKeys(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := newWithClock(100, 100, c.now) // refills in 1s
	for i := range 1000 {
		l.Allow(fmt.Sprint("user", i), 1)
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("Len = %d, want 1000", n)
	}
	c.advance(2 * time.Second)
	// One new key in every shard: each call sweeps its shard.
	touched := map[uint64]bool{}
	for i := 0; len(touched) < shardCount; i++ {
		k := fmt.Sprint("other", i)
		if sh := maphash.String(l.seed, k) % shardCount; !touched[sh] {
			touched[sh] = true
			l.Allow(k, 0)
		}
	}
	if n := l.Len(); n != shardCount {
		t.Fatalf("Len = %d after the idle keys refilled, want only the %d just used", n, shardCount)
	}
}

func TestNilLimiterAllowsEverything(t *testing.T) {
	l := New(0, 10)
	if l != nil {
		t.Fatal("rate 0 must return nil")
	}
	if ok, _ := l.Allow("u", 1<<20); !ok {
		t.Fatal("nil limiter refused")
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	l := New(1e6, 1000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				l.Allow(fmt.Sprint(g, i%50), 1)
			}
		}()
	}
	wg.Wait()
}
