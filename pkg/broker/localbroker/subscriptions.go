package localbroker

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// subscriptionShards spreads the subscription counts over this many locks,
// so Subscribe calls for different users rarely contend with each other or
// with the writer's lookups.
const subscriptionShards = 64

// subscriptions counts Subscribe calls per user.
type subscriptions struct {
	seed   maphash.Seed
	users  atomic.Int64 // users with a count above zero
	shards [subscriptionShards]subscriptionShard
}

type subscriptionShard struct {
	mu    sync.RWMutex
	count map[string]int
	_     [32]byte // pads a shard to 64 bytes, a cache line of its own
}

func (s *subscriptions) init() {
	s.seed = maphash.MakeSeed()
	for i := range s.shards {
		s.shards[i].count = make(map[string]int)
	}
}

func (s *subscriptions) shard(user string) *subscriptionShard {
	return &s.shards[maphash.String(s.seed, user)%subscriptionShards]
}

func (s *subscriptions) add(user string) {
	sh := s.shard(user)
	sh.mu.Lock()
	sh.count[user]++
	if sh.count[user] == 1 {
		s.users.Add(1)
	}
	sh.mu.Unlock()
}

func (s *subscriptions) remove(user string) {
	sh := s.shard(user)
	sh.mu.Lock()
	switch n := sh.count[user]; n {
	case 0:
	case 1:
		delete(sh.count, user)
		s.users.Add(-1)
	default:
		sh.count[user] = n - 1
	}
	sh.mu.Unlock()
}

func (s *subscriptions) has(user string) bool {
	sh := s.shard(user)
	sh.mu.RLock()
	n := sh.count[user]
	sh.mu.RUnlock()
	return n > 0
}

// empty reports whether no user is subscribed, sparing the writer a lookup
// per event when nobody listens.
func (s *subscriptions) empty() bool { return s.users.Load() == 0 }
