package redisstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/queue/queuetest"
	"github.com/heraldhq/herald/pkg/redistest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
	"github.com/heraldhq/herald/pkg/store/storetest"
)

func TestQueueConformance(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	for _, parts := range []int{1, 4} {
		t.Run(fmt.Sprint("Partitions", parts), func(t *testing.T) {
			queuetest.Run(t, func(t *testing.T, opts queue.Options) queuetest.Queue {
				st, _ := newNode(t, srv, "a", 0)
				n++
				return st.Queue(fmt.Sprint("q", n), redisstore.QueueOptions{Options: opts, Partitions: parts})
			})
		})
	}
}

func TestQueueEntryOfDeadNodeIsClaimedByAnother(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opts := queue.Options{RetryAfter: 200 * time.Millisecond}
	a, _ := newNode(t, srv, "a", 0)
	b, _ := newNode(t, srv, "b", 0)
	qa, qb := a.Queue("w", redisstore.QueueOptions{Options: opts}), b.Queue("w", redisstore.QueueOptions{Options: opts})
	if _, err := qa.Enqueue(ctx, "k", []byte("work")); err != nil {
		t.Fatal(err)
	}
	got, err := qa.Read(ctx, 1, time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("a read %d, %v", len(got), err)
	}
	// a dies without acking; b takes the entry over once it is idle.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		items, err := qb.Read(ctx, 1, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 1 {
			if string(items[0].Body) != "work" || items[0].Attempts != 2 {
				t.Fatalf("claimed %+v, want the work on attempt 2", items[0])
			}
			return
		}
	}
	t.Fatal("b never claimed the abandoned entry")
}

func TestQueueUnavailableWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	st, _ := newNode(t, srv, "a", 0)
	q := st.Queue("w", redisstore.QueueOptions{})
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := q.Enqueue(ctx, "k", []byte("x")); err == nil {
		t.Fatal("enqueue succeeded with Redis down")
	}
}

func TestMembershipAndCounter(t *testing.T) {
	st, _ := newNode(t, redistest.Start(t), "a", 0)
	ctx := context.Background()
	if err := st.ApplyMembership(ctx, &notification.Membership{Conversation: "c", Set: []string{"bob", "alice"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyMembership(ctx, &notification.Membership{Conversation: "c", Add: []string{"carol"}, Remove: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Members(ctx, "c"); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("members = %v", got)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := st.Incr(ctx, "k", time.Minute); err != nil || n != want {
			t.Fatalf("incr = %d, %v; want %d", n, err, want)
		}
	}
}

func TestPushStore(t *testing.T) {
	srv := redistest.Start(t)
	t.Run("Devices", func(t *testing.T) { st, _ := newNode(t, srv, "a", 0); storetest.Devices(t, st) })
	t.Run("DeviceLimit", func(t *testing.T) { st, _ := newNode(t, srv, "a", 0); storetest.DeviceLimit(t, st) })
	t.Run("Pending", func(t *testing.T) {
		st, _ := newNode(t, srv, "a", 0)
		storetest.PendingPushes(t, st)
	})
}

func TestClaimOfDeadNodeReturnsAfterLease(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newNode(t, srv, "a", 0)
	b, _ := newNode(t, srv, "b", 0)
	ctx := context.Background()
	now := time.Now()
	if err := a.SchedulePush(ctx, []push.Pending{{User: "u", ID: "n", Due: now, Message: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.ClaimPush(ctx, now, 5, time.Second); len(got) != 1 {
		t.Fatal("a did not claim")
	}
	if got, _ := b.ClaimPush(ctx, now.Add(500*time.Millisecond), 5, time.Second); len(got) != 0 {
		t.Fatal("b claimed while a's lease runs")
	}
	if got, _ := b.ClaimPush(ctx, now.Add(2*time.Second), 5, time.Second); len(got) != 1 {
		t.Fatal("b did not take over the expired claim")
	}
}

// TestQueuePartitionCountChangeLosesNothing: entries written by nodes with
// more partitions than the reader's (a lowered count, or a rolling change)
// are read too, and dead letters in every partition count.
func TestQueuePartitionCountChangeLosesNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opts := queue.Options{MaxAttempts: 1}
	a, _ := newNode(t, srv, "a", 0)
	b, _ := newNode(t, srv, "b", 0)
	wide := a.Queue("webhooks", redisstore.QueueOptions{Options: opts, Partitions: 16})
	const n = 40
	for round, parts := range []int{2, 1} {
		for i := range n {
			if _, err := wide.Enqueue(ctx, fmt.Sprint("k", round, "-", i), []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		narrow := b.Queue("webhooks", redisstore.QueueOptions{Options: opts, Partitions: parts})
		seen := map[string]bool{}
		deadline := time.Now().Add(10 * time.Second)
		for len(seen) < n && time.Now().Before(deadline) {
			items, err := narrow.Read(ctx, 10, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				seen[string(it.Body)] = true
				if dead, err := narrow.Fail(ctx, it); err != nil || !dead {
					t.Fatalf("fail: %v %v", dead, err)
				}
			}
		}
		if len(seen) != n {
			t.Fatalf("a reader with %d partitions read %d of %d entries", parts, len(seen), n)
		}
		depth, dead, err := narrow.Stats(ctx)
		if want := int64((round + 1) * n); err != nil || depth != 0 || dead != want {
			t.Fatalf("stats with %d partitions: depth %d dead %d (%v), want 0 and %d", parts, depth, dead, err, want)
		}
	}
}
