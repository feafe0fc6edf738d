package histlog

import (
	"hash/maphash"
	"sync"
)

// loc is where one retained event is: its segment, the record's offset in
// it, and the event's creation time in whole seconds (rounded down), which
// is enough to trim by age without reading the record. It holds no
// pointers, so the garbage collector does not scan the index's slices.
type loc struct {
	seg     uint32
	off     uint32
	created uint32
}

// userLog is the index of one user's history.
type userLog struct {
	head    uint64 // the newest sequence number handed out; 0 for none
	headSeg uint32 // the segment of the newest record about the user
	locs    []loc  // the retained events: sequence numbers head-len(locs)+1 … head

	// pending counts sequence numbers taken by the append in progress;
	// only the writer touches it.
	pending uint64
}

// first is the sequence number of the oldest retained event.
func (u *userLog) first() uint64 { return u.head - uint64(len(u.locs)) + 1 }

// trimFront drops the n oldest retained events, and reports their
// segments through drop.
func (u *userLog) trimFront(n int, drop func(loc)) {
	for _, l := range u.locs[:n] {
		drop(l)
	}
	u.locs = u.locs[n:]
	if len(u.locs) == 0 {
		u.locs = nil
	}
}

const shardCount = 64

// index maps users to their userLog, in shards so that readers of
// different users do not contend, and the writer's updates lock one shard
// at a time.
type index struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu    sync.RWMutex
	users map[string]*userLog
}

func (x *index) init() {
	x.seed = maphash.MakeSeed()
	for i := range x.shards {
		x.shards[i].users = make(map[string]*userLog)
	}
}

func (x *index) shard(user string) *shard {
	return &x.shards[maphash.String(x.seed, user)%shardCount]
}

// lookup returns the user's log, or nil; with the shard read-locked by the
// caller when the writer may be running.
func (sh *shard) lookup(user string) *userLog { return sh.users[user] }

// getOrCreate returns the user's log, creating an empty one. Only the
// writer creates logs.
func (x *index) getOrCreate(user string) *userLog {
	sh := x.shard(user)
	sh.mu.RLock()
	u := sh.users[user]
	sh.mu.RUnlock()
	if u != nil {
		return u
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if u = sh.users[user]; u == nil {
		u = &userLog{}
		sh.users[user] = u
	}
	return u
}
