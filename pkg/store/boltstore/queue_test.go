package boltstore

import (
	"context"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/queuelog"
	"github.com/heraldhq/herald/pkg/store/storetest"
)

func TestQueueBackingKeepsKeysAndDeadLetters(t *testing.T) {
	s, clk := openTemp(t, Options{})
	b := s.QueueBacking()
	now := clk.now()
	keys := []queuelog.Key{{Name: "k", Expires: now.Add(time.Minute)}, {Name: "old", Expires: now.Add(-time.Second)}}
	if err := b.PutKeys(keys); err != nil {
		t.Fatal(err)
	}
	// A later write with an earlier expiry does not shorten a key's life.
	if err := b.PutKeys([]queuelog.Key{{Name: "k", Expires: now.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		at   time.Time
		want bool
	}{
		{"k", now, true}, {"k", now.Add(30 * time.Second), true}, {"k", now.Add(2 * time.Minute), false},
		{"old", now, false}, {"never", now, false},
	} {
		if has, err := b.HasKey(c.key, c.at); err != nil || has != c.want {
			t.Errorf("HasKey(%s, +%v) = %v, %v; want %v", c.key, c.at.Sub(now), has, err, c.want)
		}
	}
	for i := range 2 {
		if err := b.PutDead(queuelog.DeadItem{Attempts: 5, Enqueued: now, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.DeadCount(); err != nil || n != 2 {
		t.Fatalf("dead count %d, %v", n, err)
	}
}

func TestDedupeKeysExpireAndAreSwept(t *testing.T) {
	s, clk := openTemp(t, Options{})
	ctx := context.Background()
	b := s.QueueBacking()
	if err := b.PutKeys([]queuelog.Key{{Name: "k", Expires: clk.now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketDedupe).Stats().KeyN; return nil })
	if n != 0 {
		t.Fatalf("%d dedupe keys left after the sweep", n)
	}
}

func TestMembership(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	steps := []struct {
		m    notification.Membership
		want []string
	}{
		{notification.Membership{Conversation: "c", Set: []string{"bob", "alice"}}, []string{"alice", "bob"}},
		{notification.Membership{Conversation: "c", Add: []string{"carol"}, Remove: []string{"bob"}}, []string{"alice", "carol"}},
		{notification.Membership{Conversation: "c", Set: []string{"dave"}}, []string{"dave"}},
		{notification.Membership{Conversation: "c", Deleted: true}, nil},
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
	t.Run("DeviceLimit", func(t *testing.T) { s, _ := openTemp(t, Options{}); storetest.DeviceLimit(t, s) })
	t.Run("Pending", func(t *testing.T) { s, _ := openTemp(t, Options{}); storetest.PendingPushes(t, s) })
}
