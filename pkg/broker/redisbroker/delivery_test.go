package redisbroker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

// recorder is a Handler that records each user's cursors and notices when
// it is called concurrently for one user.
type recorder struct {
	mu         sync.Mutex
	cursors    map[string][]notification.Cursor
	busy       map[string]bool
	concurrent []string
}

func newRecorder() *recorder {
	return &recorder{cursors: make(map[string][]notification.Cursor), busy: make(map[string]bool)}
}

func (r *recorder) handle(ev *notification.Event) {
	r.mu.Lock()
	if r.busy[ev.User] {
		r.concurrent = append(r.concurrent, ev.User)
	}
	r.busy[ev.User] = true
	r.mu.Unlock()
	time.Sleep(10 * time.Microsecond) // widen the window a concurrent call would hit
	r.mu.Lock()
	r.busy[ev.User] = false
	r.cursors[ev.User] = append(r.cursors[ev.User], ev.Cursor)
	r.mu.Unlock()
}

func (r *recorder) of(user string) []notification.Cursor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notification.Cursor(nil), r.cursors[user]...)
}

// wait waits until user has at least n events.
func (r *recorder) wait(t *testing.T, user string, n int) []notification.Cursor {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := r.of(user)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d events after 30s, want %d (last %v)", user, len(got), n, last(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectExactly checks that user got seqs 1..n of one epoch, in order, once.
func (r *recorder) expectExactly(t *testing.T, user string, n int) {
	t.Helper()
	got := r.wait(t, user, n)
	time.Sleep(100 * time.Millisecond) // let duplicates, if any, arrive
	got = r.of(user)
	if len(got) != n {
		t.Fatalf("%s: %d events, want %d", user, len(got), n)
	}
	for i, c := range got {
		if c.Seq != uint64(i+1) || c.Epoch != got[0].Epoch {
			t.Fatalf("%s: event %d has cursor %v (first %v)", user, i, c, got[0])
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.concurrent) > 0 {
		t.Fatalf("handler called concurrently for %v", r.concurrent)
	}
}

func last(cs []notification.Cursor) notification.Cursor {
	if len(cs) == 0 {
		return notification.Cursor{}
	}
	return cs[len(cs)-1]
}

func publish(t *testing.T, b *redisbroker.Broker, events ...*notification.Event) {
	t.Helper()
	if err := b.Publish(context.Background(), events); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func subscribe(t *testing.T, b *redisbroker.Broker, user string) {
	t.Helper()
	if err := b.Subscribe(context.Background(), user); err != nil {
		t.Fatalf("subscribe %s: %v", user, err)
	}
}

// numsub is how many connections are subscribed to user's channel.
func numsub(t *testing.T, c *redis.Client, user string) int64 {
	t.Helper()
	ch := "herald:{" + user + "}:c"
	n, err := c.PubSubNumSub(context.Background(), ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[ch]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSubscribedNodeReceivesAnotherNodesEventsInOrder(t *testing.T) {
	srv := redistest.Start(t)
	recA, recB := newRecorder(), newRecorder()
	a := newBroker(t, srv, recA.handle, redisbroker.Options{})
	b := newBroker(t, srv, recB.handle, redisbroker.Options{})
	subscribe(t, b, "bob")
	subscribe(t, a, "alice")
	for i := 0; i < 50; i++ {
		publish(t, a, brokertest.Event("bob", fmt.Sprint(i)), brokertest.Event("alice", fmt.Sprint(i)), brokertest.Event("carol", fmt.Sprint(i)))
	}
	recB.expectExactly(t, "bob", 50)
	recA.expectExactly(t, "alice", 50)
	for _, c := range []struct {
		rec  *recorder
		user string
	}{{recA, "bob"}, {recB, "alice"}, {recA, "carol"}, {recB, "carol"}} {
		if got := c.rec.of(c.user); len(got) != 0 {
			t.Errorf("a node not subscribed to %s received %d of its events", c.user, len(got))
		}
	}
}

// TestOnlySubscribedNodesListen: a node listens on a user's channel only
// while it has subscribers for that user, whatever the order of
// subscribes and unsubscribes.
func TestOnlySubscribedNodesListen(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	a := newBroker(t, srv, newRecorder().handle, redisbroker.Options{})
	b := newBroker(t, srv, newRecorder().handle, redisbroker.Options{})
	ctx := context.Background()
	subscribe(t, a, "u")
	subscribe(t, a, "u")
	subscribe(t, b, "u")
	if n := numsub(t, c, "u"); n != 2 {
		t.Fatalf("two nodes subscribed, NUMSUB %d", n)
	}
	_ = a.Unsubscribe(ctx, "u")
	_ = b.Unsubscribe(ctx, "u")
	waitUntil(t, "b to leave", func() bool { return numsub(t, c, "u") == 1 })
	_ = a.Unsubscribe(ctx, "u")
	waitUntil(t, "a to leave", func() bool { return numsub(t, c, "u") == 0 })
	_ = a.Unsubscribe(ctx, "u") // unmatched: ignored
}

// TestLeavingAndComingBackQuickly: a user who leaves and returns before
// Redis confirmed the unsubscribe is subscribed again on return, and gets
// what is published afterwards.
func TestLeavingAndComingBackQuickly(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	rec := newRecorder()
	pub := newBroker(t, srv, newRecorder().handle, redisbroker.Options{})
	node := newBroker(t, srv, rec.handle, redisbroker.Options{})
	ctx := context.Background()
	const rounds = 30
	for i := 1; i <= rounds; i++ {
		subscribe(t, node, "u")
		_ = node.Unsubscribe(ctx, "u")
		subscribe(t, node, "u")
		publish(t, pub, brokertest.Event("u", fmt.Sprint(i)))
		rec.wait(t, "u", i)
		_ = node.Unsubscribe(ctx, "u")
		_ = node.Unsubscribe(ctx, "u") // unmatched: ignored
	}
	waitUntil(t, "the node to leave", func() bool { return numsub(t, c, "u") == 0 })
	if got := rec.of("u"); len(got) != rounds {
		t.Fatalf("%d events for %d publishes while subscribed", len(got), rounds)
	}
}

// TestKilledPubSubConnectionsLoseNothing kills the node's pub/sub
// connection again and again while events are published without pause:
// the handler still gets every event of every user once, in order.
func TestKilledPubSubConnectionsLoseNothing(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharded=%v", sharded), func(t *testing.T) {
			srv := redistest.Start(t)
			c := srv.Client()
			rec := newRecorder()
			opts := redisbroker.Options{Sharded: sharded}
			pub := newBroker(t, srv, newRecorder().handle, opts)
			node := newBroker(t, srv, rec.handle, opts)
			users := []string{"u0", "u1", "u2", "u3"}
			for _, u := range users {
				subscribe(t, node, u)
			}
			const rounds = 1000
			done := make(chan error, 1)
			go func() {
				for i := 0; i < rounds; i++ {
					batch := make([]*notification.Event, len(users))
					for j, u := range users {
						batch[j] = brokertest.Event(u, fmt.Sprint(i))
					}
					if err := pub.Publish(context.Background(), batch); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			kills := 0
			for publishing := true; publishing; {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					publishing = false
				case <-time.After(20 * time.Millisecond):
					if n, err := c.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result(); err == nil && n > 0 {
						kills++
					}
				}
			}
			for _, u := range users {
				rec.expectExactly(t, u, rounds)
			}
			t.Logf("%d pub/sub connection kills while publishing", kills)
			if kills == 0 {
				t.Log("no pub/sub connection was killed while publishing; the test proved little")
			}
		})
	}
}

// TestEventsPublishedWhileReconnectingAreBackfilled: events published while
// the node's pub/sub connection is down, before it delivered anything, are
// read from the stream after the re-subscription.
func TestEventsPublishedWhileReconnectingAreBackfilled(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	rec := newRecorder()
	pub := newBroker(t, srv, newRecorder().handle, redisbroker.Options{})
	node := newBroker(t, srv, rec.handle, redisbroker.Options{})
	publish(t, pub, brokertest.Event("u", "before subscribing"))
	subscribe(t, node, "u")
	if err := c.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, brokertest.Event("u", "a"), brokertest.Event("u", "b"), brokertest.Event("u", "c"))
	got := rec.wait(t, "u", 3)
	time.Sleep(100 * time.Millisecond)
	if got = rec.of("u"); fmt.Sprint(seqsOf(got)) != "[2 3 4]" {
		t.Fatalf("delivered %v", got)
	}
}

func seqsOf(cs []notification.Cursor) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Seq
	}
	return out
}

// TestSubscribeWhileRedisIsDownFailsThenRecovers: Subscribe gives up after
// its timeout, leaves nothing behind, and works once Redis is back.
func TestSubscribeWhileRedisIsDownFailsThenRecovers(t *testing.T) {
	srv := redistest.Start(t)
	rec := newRecorder()
	node := newBroker(t, srv, rec.handle, redisbroker.Options{SubscribeTimeout: time.Second})
	srv.Kill()
	start := time.Now()
	if err := node.Subscribe(context.Background(), "u"); err == nil {
		t.Fatal("subscribe succeeded with Redis down")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("subscribe took %s with a 1s timeout", d)
	}
	srv.Restart()
	waitUntil(t, "a subscription after the restart", func() bool {
		return node.Subscribe(context.Background(), "u") == nil
	})
	publish(t, node, brokertest.Event("u", "after"))
	rec.expectExactly(t, "u", 1)
}

// TestUnansweredPingReplacesTheConnection: a connection that stops
// answering (here: every client paused) is dropped and replaced once a
// ping goes unanswered, and what was published meanwhile is delivered.
func TestUnansweredPingReplacesTheConnection(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	rec := newRecorder()
	pub := newBroker(t, srv, newRecorder().handle, redisbroker.Options{})
	node := newBroker(t, srv, rec.handle, redisbroker.Options{HealthCheckInterval: 200 * time.Millisecond})
	subscribe(t, node, "u")
	ctx := context.Background()
	before := pubsubClientIDs(t, c)
	if err := c.Do(ctx, "CLIENT", "PAUSE", 2500, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, brokertest.Event("u", "during the pause")) // runs once the pause ends
	rec.expectExactly(t, "u", 1)
	waitUntil(t, "the replaced pub/sub connection", func() bool {
		after := pubsubClientIDs(t, c)
		return len(after) == 1 && len(before) == 1 && after[0] != before[0]
	})
}

func pubsubClientIDs(t *testing.T, c *redis.Client) []int64 {
	t.Helper()
	list, err := c.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		var id int64
		if _, err := fmt.Sscanf(line, "id=%d", &id); err == nil && slices.Contains(strings.Fields(line), "sub=1") {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestHealthyQuietConnectionsAreKept: pings on quiet connections, with or
// without subscriptions, are answered and cause no reconnects.
func TestHealthyQuietConnectionsAreKept(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	rec := newRecorder()
	opts := redisbroker.Options{HealthCheckInterval: 50 * time.Millisecond}
	idle := newBroker(t, srv, newRecorder().handle, opts)
	node := newBroker(t, srv, rec.handle, opts)
	subscribe(t, node, "u")
	before := connectionsReceived(t, c)
	time.Sleep(time.Second)
	if n := connectionsReceived(t, c) - before; n != 0 {
		t.Fatalf("%d new connections while idle", n)
	}
	publish(t, idle, brokertest.Event("u", "still there"))
	rec.expectExactly(t, "u", 1)
}

func connectionsReceived(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_connections_received:"); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n
			}
		}
	}
	t.Fatal("total_connections_received not in INFO stats")
	return 0
}
