package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/redistest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
)

// clusterNode returns a store over its own cluster client, as a separate
// Herald process would have, and that client: closing it plays the
// process dying.
func clusterNode(t *testing.T, cl *redistest.Cluster, name string) (*redisstore.Store, func()) {
	t.Helper()
	c := cl.Client()
	ap, err := c.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	st := redisstore.New(ap, redisstore.Options{NodeID: name, Logger: quiet})
	t.Cleanup(func() {
		_ = st.Close()
		_ = ap.Close()
	})
	return st, func() { _ = ap.Close(); _ = c.Close() }
}

// primariesHolding counts the primaries holding keys that match pattern.
func primariesHolding(t *testing.T, cl *redistest.Cluster, pattern string) (holding, primaries int) {
	t.Helper()
	ps := cl.Primaries()
	for _, p := range ps {
		keys, err := p.Client().Keys(context.Background(), pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			holding++
		}
	}
	return holding, len(ps)
}

// TestQueuePartitionsSpreadOverPrimaries: with 8 partitions the webhook
// queue's streams lie on every primary of a 3-primary cluster, so no one
// primary takes all the ingest.
func TestQueuePartitionsSpreadOverPrimaries(t *testing.T) {
	cl := redistest.StartCluster(t)
	st, _ := clusterNode(t, cl, "a")
	q := st.Queue("webhooks", redisstore.QueueOptions{Partitions: 8})
	ctx := context.Background()
	for i := range 64 {
		if _, err := q.Enqueue(ctx, fmt.Sprint("talkjs:", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	holding, primaries := primariesHolding(t, cl, "herald:{webhooks*}:q")
	if holding < 2 || holding != primaries {
		t.Fatalf("queue streams on %d of %d primaries, want all", holding, primaries)
	}
	if depth, _, err := q.Stats(ctx); err != nil || depth != 64 {
		t.Fatalf("depth = %d, %v; want 64 summed over the partitions", depth, err)
	}
}

// TestQueueEntriesOfDeadNodeAreClaimedOnCluster: a node that read entries
// of every partition and died mid-item leaves them pending; another node
// takes every one over once idle RetryAfter.
func TestQueueEntriesOfDeadNodeAreClaimedOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	opts := redisstore.QueueOptions{Options: queue.Options{RetryAfter: 300 * time.Millisecond}, Partitions: 8}
	a, killA := clusterNode(t, cl, "a")
	b, _ := clusterNode(t, cl, "b")
	qa, qb := a.Queue("webhooks", opts), b.Queue("webhooks", opts)
	const n = 24
	for i := range n {
		if _, err := qa.Enqueue(ctx, fmt.Sprint("k", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	partitions := map[string]bool{}
	for got := 0; got < n; {
		items, err := qa.Read(ctx, n, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			t.Fatalf("a read %d of %d entries", got, n)
		}
		for _, it := range items {
			p, _, _ := strings.Cut(it.ID, "/")
			partitions[p] = true
		}
		got += len(items)
	}
	if len(partitions) < 2 {
		t.Fatalf("entries came from %d partition(s)", len(partitions))
	}
	killA() // a dies holding every entry

	seen := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		items, err := qb.Read(ctx, n, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Attempts != 2 {
				t.Fatalf("claimed %s on attempt %d, want 2", it.Body, it.Attempts)
			}
			seen[string(it.Body)] = true
			if err := qb.Ack(ctx, it.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != n {
		t.Fatalf("b took over %d of %d entries", len(seen), n)
	}
	if depth, _, err := qb.Stats(ctx); err != nil || depth != 0 {
		t.Fatalf("depth after b's acks = %d, %v", depth, err)
	}
}

// TestPendingPushesSpreadOverPrimaries: pending pushes of many users lie
// on every primary, so scheduling and acking them is not all on one slot;
// the claimer still finds every one.
func TestPendingPushesSpreadOverPrimaries(t *testing.T) {
	cl := redistest.StartCluster(t)
	st, _ := clusterNode(t, cl, "a")
	ctx := context.Background()
	now := time.Now()
	var ps []push.Pending
	for i := range 200 {
		ps = append(ps, push.Pending{User: fmt.Sprint("user-", i), ID: "n", Due: now, Message: []byte("{}")})
	}
	if err := st.SchedulePush(ctx, ps); err != nil {
		t.Fatal(err)
	}
	holding, primaries := primariesHolding(t, cl, "herald:{push*}:due")
	if holding < 2 || holding != primaries {
		t.Fatalf("pending pushes on %d of %d primaries, want all", holding, primaries)
	}
	claimed := 0
	for range 10 {
		got, err := st.ClaimPush(ctx, now, 50, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		claimed += len(got)
	}
	if claimed != 200 {
		t.Fatalf("claimed %d of 200", claimed)
	}
}
