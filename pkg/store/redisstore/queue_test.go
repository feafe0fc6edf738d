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
	"github.com/heraldhq/herald/pkg/store/storetest"
)

func TestQueueConformance(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	queuetest.Run(t, func(t *testing.T, opts queue.Options) queuetest.Queue {
		st, _ := newNode(t, srv, "a", 0)
		n++
		return st.Queue(fmt.Sprint("q", n), opts)
	})
}

func TestQueueEntryOfDeadNodeIsClaimedByAnother(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	opts := queue.Options{RetryAfter: 200 * time.Millisecond}
	a, _ := newNode(t, srv, "a", 0)
	b, _ := newNode(t, srv, "b", 0)
	qa, qb := a.Queue("w", opts), b.Queue("w", opts)
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
	q := st.Queue("w", queue.Options{})
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
