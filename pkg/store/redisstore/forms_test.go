package redisstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/queue/queuetest"
	"github.com/heraldhq/herald/pkg/redistest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
	"github.com/heraldhq/herald/pkg/store/storetest"
)

// TestConformanceOnRedisCluster runs the store's shared behaviour against a
// 3-primary / 3-replica Redis Cluster, where every multi-key command must
// stay within one slot.
func TestConformanceOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	runForms(t, func() redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	})
}

// TestConformanceOnRedisSentinel runs it against a primary found through
// three Sentinels.
func TestConformanceOnRedisSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	runForms(t, func() redis.UniversalClient {
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName(), SentinelAddrs: s.Addrs()})
	})
}

// runForms runs the suites with stores over clients from newClient; every
// subtest has its own key prefix, so they share one deployment.
func runForms(t *testing.T, newClient func() redis.UniversalClient) {
	prefixes := map[string]string{} // by test name: a test's nodes share one
	node := func(t *testing.T, name string, ttl time.Duration) *redisstore.Store {
		t.Helper()
		c := newClient()
		ap, err := c.(interface {
			AutoPipeline() (*redis.AutoPipeliner, error)
		}).AutoPipeline()
		if err != nil {
			t.Fatal(err)
		}
		prefix, ok := prefixes[t.Name()]
		if !ok {
			prefix = fmt.Sprintf("t%d:", len(prefixes))
			prefixes[t.Name()] = prefix
		}
		st := redisstore.New(ap, redisstore.Options{Prefix: prefix, NodeID: name, PresenceTTL: ttl, Logger: quiet})
		t.Cleanup(func() {
			_ = st.Close()
			_ = ap.Close()
			_ = c.Close()
		})
		return st
	}
	t.Run("Idempotency", func(t *testing.T) { storetest.Idempotency(t, node(t, "a", 0)) })
	t.Run("Devices", func(t *testing.T) { storetest.Devices(t, node(t, "a", 0)) })
	t.Run("DeviceLimit", func(t *testing.T) { storetest.DeviceLimit(t, node(t, "a", 0)) })
	t.Run("PendingPushes", func(t *testing.T) { storetest.PendingPushes(t, node(t, "a", 0)) })
	t.Run("Queue", func(t *testing.T) {
		queuetest.Run(t, func(t *testing.T, opts queue.Options) queuetest.Queue {
			return node(t, "a", 0).Queue("webhooks", redisstore.QueueOptions{Options: opts, Partitions: 4})
		})
	})
	t.Run("KeyValue", func(t *testing.T) {
		st := node(t, "a", 0)
		ctx := context.Background()
		if err := st.Put(ctx, "vapid", []byte("keys")); err != nil {
			t.Fatal(err)
		}
		if v, err := st.Get(ctx, "vapid"); err != nil || string(v) != "keys" {
			t.Fatalf("get: %q %v", v, err)
		}
	})
	t.Run("MembershipAndCounter", func(t *testing.T) {
		st := node(t, "a", 0)
		ctx := context.Background()
		if err := st.ApplyMembership(ctx, &notification.Membership{Conversation: "c", Set: []string{"bob", "alice"}}); err != nil {
			t.Fatal(err)
		}
		if err := st.ApplyMembership(ctx, &notification.Membership{Conversation: "c", Add: []string{"carol"}, Remove: []string{"bob"}}); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Members(ctx, "c"); err != nil || !slices.Equal(got, []string{"alice", "carol"}) {
			t.Fatalf("members = %v %v", got, err)
		}
		for want := int64(1); want <= 3; want++ {
			if n, err := st.Incr(ctx, "k", time.Minute); err != nil || n != want {
				t.Fatalf("incr = %d, %v; want %d", n, err, want)
			}
		}
	})
	t.Run("Presence", func(t *testing.T) {
		a, b := node(t, "a", time.Second), node(t, "b", time.Second)
		ctx := context.Background()
		// Users spread over the slots, so over every primary of a cluster.
		for i := range 20 {
			user := fmt.Sprint("user-", i)
			for _, st := range []*redisstore.Store{a, b, b} {
				if err := st.Join(ctx, user); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Leave(ctx, user); err != nil {
				t.Fatal(err)
			}
			if n := mustCount(t, a, user); n != 2 {
				t.Fatalf("count of %s: %d, want 2", user, n)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if n := mustCount(t, a, "user-3"); n != 1 {
			t.Fatalf("count after b closed: %d, want 1", n)
		}
	})
}
