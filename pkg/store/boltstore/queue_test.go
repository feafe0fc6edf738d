package boltstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/queue/queuetest"
	"github.com/heraldhq/herald/pkg/store/storetest"
	"github.com/heraldhq/herald/pkg/webhook"
)

func TestQueueConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, opts queue.Options) queuetest.Queue {
		s, _ := openTemp(t, Options{})
		s.now = time.Now
		return s.Queue(opts)
	})
}

func TestQueueItemsSurviveRestartUntilAcked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	ctx := context.Background()
	s := openAt(t, path, Options{})
	q := s.Queue(queue.Options{})
	for _, k := range []string{"a", "b"} {
		if _, err := q.Enqueue(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := q.Read(ctx, 2, time.Second)
	if err != nil || len(items) != 2 {
		t.Fatalf("read %d, %v", len(items), err)
	}
	if err := q.Ack(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	// The process dies holding "b".
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{})
	q = s.Queue(queue.Options{})
	again, err := q.Read(ctx, 10, time.Second)
	if err != nil || len(again) != 1 || string(again[0].Body) != "b" || again[0].Attempts != 2 {
		t.Fatalf("after restart read %+v, %v; want b on its second attempt", again, err)
	}
	if dup, _ := q.Enqueue(ctx, "a", []byte("a")); !dup {
		t.Fatal("dedupe key forgotten across restart")
	}
}

func TestDedupeKeysExpireAndAreSwept(t *testing.T) {
	s, clk := openTemp(t, Options{})
	ctx := context.Background()
	q := s.Queue(queue.Options{DedupeTTL: time.Minute})
	if _, err := q.Enqueue(ctx, "k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if dup, err := q.Enqueue(ctx, "k", []byte("y")); err != nil || dup {
		t.Fatalf("after expiry: dup=%v err=%v", dup, err)
	}
}

func TestMembership(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	steps := []struct {
		m    webhook.Membership
		want []string
	}{
		{webhook.Membership{Conversation: "c", Set: []string{"bob", "alice"}}, []string{"alice", "bob"}},
		{webhook.Membership{Conversation: "c", Add: []string{"carol"}, Remove: []string{"bob"}}, []string{"alice", "carol"}},
		{webhook.Membership{Conversation: "c", Set: []string{"dave"}}, []string{"dave"}},
		{webhook.Membership{Conversation: "c", Deleted: true}, nil},
	}
	for i, st := range steps {
		if err := s.ApplyMembership(ctx, &st.m); err != nil {
			t.Fatal(err)
		}
		got, err := s.Members(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(st.want) {
			t.Fatalf("step %d: members %v, want %v", i, got, st.want)
		}
		for j := range got {
			if got[j] != st.want[j] {
				t.Fatalf("step %d: members %v, want %v", i, got, st.want)
			}
		}
	}
}

func TestPushStore(t *testing.T) {
	t.Run("Devices", func(t *testing.T) { s, _ := openTemp(t, Options{}); storetest.Devices(t, s) })
	t.Run("Pending", func(t *testing.T) { s, _ := openTemp(t, Options{}); storetest.PendingPushes(t, s) })
}
