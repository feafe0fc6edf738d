package redisstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/redistest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
	"github.com/heraldhq/herald/pkg/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newNode returns a store with its own client, as a separate Herald process
// would have; closing the returned client simulates the process dying.
func newNode(t *testing.T, srv *redistest.Server, name string, ttl time.Duration) (*redisstore.Store, *redis.Client) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	// Herald runs the store over an autopipeliner; so do the tests.
	ap, err := c.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	st := redisstore.New(ap, redisstore.Options{NodeID: name, PresenceTTL: ttl, Logger: quiet})
	t.Cleanup(func() {
		_ = st.Close()
		_ = ap.Close()
		_ = c.Close()
	})
	return st, c
}

func mustCount(t *testing.T, st *redisstore.Store, user string) int {
	t.Helper()
	n, err := st.Count(context.Background(), user)
	if err != nil {
		t.Fatalf("count %s: %v", user, err)
	}
	return n
}

func waitCount(t *testing.T, st *redisstore.Store, user string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := st.Count(context.Background(), user)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("count of %s: %d %v, want %d", user, n, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIdempotency(t *testing.T) {
	st, _ := newNode(t, redistest.Start(t), "a", 0)
	storetest.Idempotency(t, st)
}

func TestReserveHasOneWinner(t *testing.T) {
	st, _ := newNode(t, redistest.Start(t), "a", 0)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := st.Reserve(context.Background(), "k", strconv.Itoa(i), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := fresh.Load(); n != 1 {
		t.Fatalf("%d concurrent reservations got the key", n)
	}
}

func TestIdempotencyEdges(t *testing.T) {
	st, _ := newNode(t, redistest.Start(t), "a", 0)
	ctx := context.Background()
	if _, _, err := st.Reserve(ctx, "k", "h", 0); err == nil {
		t.Error("reserve without ttl accepted (the key would never expire)")
	}
	if _, fresh, err := st.Reserve(ctx, "empty", "h", time.Minute); err != nil || !fresh {
		t.Fatalf("reserve: %v %v", fresh, err)
	}
	if err := st.Complete(ctx, "empty", nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	prior, fresh, err := st.Reserve(ctx, "empty", "h", time.Minute)
	if err != nil || fresh || prior == nil || len(prior) != 0 {
		t.Fatalf("an empty stored result must read as stored, not in progress: %q %v %v", prior, fresh, err)
	}
}

func TestKeyValue(t *testing.T) {
	st, _ := newNode(t, redistest.Start(t), "a", 0)
	ctx := context.Background()
	if _, err := st.Get(ctx, "vapid"); !errors.Is(err, redisstore.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if err := st.Put(ctx, "vapid", []byte("keys")); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(ctx, "vapid"); err != nil || string(v) != "keys" {
		t.Fatalf("get: %q %v", v, err)
	}
}

func TestPresenceIsSharedAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv, "a", 0)
	b, _ := newNode(t, srv, "b", 0)
	ctx := context.Background()
	if a.NodeID() == b.NodeID() {
		t.Fatalf("two nodes share the id %s", a.NodeID())
	}
	for _, st := range []*redisstore.Store{a, b, b} {
		if err := st.Join(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if n := mustCount(t, a, "alice"); n != 3 {
		t.Fatalf("count on a: %d", n)
	}
	if err := b.Leave(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n := mustCount(t, b, "alice"); n != 2 {
		t.Fatalf("count on b after a leave: %d", n)
	}
	if n := mustCount(t, a, "nobody"); n != 0 {
		t.Fatalf("count of an unknown user: %d", n)
	}
}

// TestPresenceForgetsKilledNode: a node that dies without leaving (its
// process and connections gone) stops counting once its liveness key
// expires, and its fields are cleaned up.
func TestPresenceForgetsKilledNode(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv, "a", time.Second)
	b, bClient := newNode(t, srv, "b", time.Second)
	ctx := context.Background()
	for _, st := range []*redisstore.Store{a, b, b} {
		if err := st.Join(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if n := mustCount(t, a, "alice"); n != 3 {
		t.Fatalf("count before the kill: %d", n)
	}
	_ = bClient.Close() // b can neither refresh its key nor leave
	waitCount(t, a, "alice", 1)
	fields, err := srv.Client().HKeys(ctx, "herald:{alice}:presence").Result()
	if err != nil || len(fields) != 1 || fields[0] != a.NodeID() {
		t.Fatalf("fields after cleanup: %v %v", fields, err)
	}
}

// TestPresenceOfClosedNodeStopsAtOnce: a clean shutdown does not wait for
// the TTL.
func TestPresenceOfClosedNodeStopsAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv, "a", time.Hour)
	b, _ := newNode(t, srv, "b", time.Hour)
	if err := b.Join(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := mustCount(t, a, "alice"); n != 0 {
		t.Fatalf("count after b closed: %d", n)
	}
}

// TestJoinRightAfterStartCounts: the first Join of a new node counts even
// if the heartbeat has not written the liveness key yet.
func TestJoinRightAfterStartCounts(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv, "a", time.Hour)
	for i := 0; i < 20; i++ {
		b, _ := newNode(t, srv, "b", time.Hour)
		if err := b.Join(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		if n := mustCount(t, a, "alice"); n != 1 {
			t.Fatalf("round %d: count %d right after the join", i, n)
		}
		_ = b.Close()
	}
}

// TestPresenceIsRestoredAfterRedisLosesIt: after a Redis restart without
// persistence, live nodes write their sessions again.
func TestPresenceIsRestoredAfterRedisLosesIt(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv, "a", time.Second)
	b, _ := newNode(t, srv, "b", time.Second)
	ctx := context.Background()
	for _, st := range []*redisstore.Store{a, b, b} {
		if err := st.Join(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Leave(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	waitCount(t, a, "alice", 2)
}

// TestNewNodeDoesNotRewriteItsSessions: the first beat of a new node finds
// no liveness key, which is no reason to rewrite, a beat later, every
// session that joined meanwhile (for 10,000 sessions that was 20,000
// commands in the node's first seconds).
func TestNewNodeDoesNotRewriteItsSessions(t *testing.T) {
	srv := redistest.Start(t)
	st, _ := newNode(t, srv, "a", 3*time.Second) // a beat a second
	ctx := context.Background()
	live := "herald:{nodes}:live:" + st.NodeID()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if n, _ := srv.Client().Exists(ctx, live).Result(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no liveness key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the first beat is done
	if err := st.Join(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	// A count this node did not write: a rewrite would put back 1.
	key := "herald:{alice}:presence"
	if err := srv.Client().HSet(ctx, key, st.NodeID(), 7).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // two more beats
	if v, err := srv.Client().HGet(ctx, key, st.NodeID()).Result(); err != nil || v != "7" {
		t.Fatalf("count after two beats: %q %v, want the 7 left alone", v, err)
	}
}
