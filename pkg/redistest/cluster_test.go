package redistest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/redistest"
)

func TestClusterFailsOverAKilledPrimary(t *testing.T) {
	cl := redistest.StartCluster(t)
	if n := len(cl.Primaries()); n != 3 {
		t.Fatalf("%d primaries, want 3", n)
	}
	c := cl.Client()
	ctx := context.Background()
	for _, k := range []string{"", "a", "user-1", "herald:{u42}:h", "{}x", "a{b}c{d}", "{{x}}"} {
		want, err := c.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redistest.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, redis says %d", k, got, want)
		}
	}
	// Keys on every primary.
	owners := map[string]bool{}
	for i := 0; len(owners) < 3; i++ {
		k := fmt.Sprintf("{u%d}:k", i)
		if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		owners[cl.PrimaryOf(k).Addr()] = true
	}
	const key = "{u0}:k"
	// The write must have reached the replica before the primary dies.
	waitReplicated(t, c, key)
	killed := cl.KillPrimaryOf(key)
	cl.WaitFailover(killed)
	if now := cl.PrimaryOf(key); now == killed {
		t.Fatal("the killed node still owns the key's slot")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := c.Get(ctx, key).Result()
		if err == nil && v == "v" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after failover: %q %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReplicated blocks until key's primary has one replica acknowledging
// all its writes.
func waitReplicated(t *testing.T, c *redis.ClusterClient, key string) {
	t.Helper()
	ctx := context.Background()
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.Do(ctx, "WAIT", 1, 5000).Int()
		if err != nil {
			return err
		}
		if n < 1 {
			return fmt.Errorf("%s: no replica acknowledged", m.Options().Addr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSentinelFailsOverAKilledPrimary(t *testing.T) {
	s := redistest.StartSentinel(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	killed := s.KillPrimary()
	s.WaitFailover(killed)
	if s.Primary() == killed {
		t.Fatal("sentinels still name the killed primary")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := c.Get(ctx, "k").Result()
		if err == nil && v == "v" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after failover: %q %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterMovesASlotWithItsKeys(t *testing.T) {
	cl := redistest.StartCluster(t)
	c := cl.Client()
	ctx := context.Background()
	for i := range 250 {
		if err := c.RPush(ctx, "{moved}:list", i).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, fmt.Sprintf("{moved}:k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	from := cl.PrimaryOf("{moved}")
	var to *redistest.Server
	for _, p := range cl.Primaries() {
		if p != from {
			to = p
		}
	}
	cl.MoveSlot("{moved}", to)
	if n, err := c.LLen(ctx, "{moved}:list").Result(); err != nil || n != 250 {
		t.Fatalf("list after the move: %d %v", n, err)
	}
	if v, err := c.Get(ctx, "{moved}:k249").Int(); err != nil || v != 249 {
		t.Fatalf("key after the move: %d %v", v, err)
	}
	if n, err := to.Client().DBSize(ctx).Result(); err != nil || n < 251 {
		t.Fatalf("target holds %d keys (%v)", n, err)
	}
}

// TestSentinelWithPasswords: the data servers and the sentinels of a set
// started WithPasswords refuse clients without the passwords, and serve
// and fail over with them.
func TestSentinelWithPasswords(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.WithPasswords("data-pw", "sentinel-pw"))
	ctx := context.Background()
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("with the passwords: %v", err)
	}
	open := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs()[0]})
	defer open.Close()
	if err := open.Ping(ctx).Err(); err == nil {
		t.Fatal("a sentinel answered a client without its password")
	}
	data := redis.NewClient(&redis.Options{Addr: s.Primary().Addr()})
	defer data.Close()
	if err := data.Get(ctx, "k").Err(); err == nil {
		t.Fatal("the primary answered a client without its password")
	}
	waitReplicatedSentinel(t, s, "k")
	victim := s.KillPrimary()
	s.WaitFailover(victim)
	if v, err := s.Client().Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after the failover: %q %v", v, err)
	}
}

func waitReplicatedSentinel(t *testing.T, s *redistest.Sentinel, key string) {
	t.Helper()
	for _, srv := range s.Servers() {
		deadline := time.Now().Add(10 * time.Second)
		for srv.Client().Exists(context.Background(), key).Val() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never got %s", srv.Addr(), key)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
