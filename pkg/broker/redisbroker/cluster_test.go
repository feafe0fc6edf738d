package redisbroker_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

// seqRecorder keeps the sequence numbers delivered to each user.
type seqRecorder struct {
	mu   sync.Mutex
	seqs map[string][]uint64
}

func (r *seqRecorder) handle(ev *notification.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs[ev.User] = append(r.seqs[ev.User], ev.Cursor.Seq)
}

func (r *seqRecorder) of(user string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs[user]...)
}

// clusterBroker is a broker over its own client of cl, with sharded pub/sub.
func clusterBroker(t *testing.T, cl *redistest.Cluster, prefix string, h func(*notification.Event)) *redisbroker.Broker {
	t.Helper()
	return clusterBrokerMetrics(t, cl, prefix, h, nil)
}

// clusterBrokerMetrics is clusterBroker registering its metrics with reg.
func clusterBrokerMetrics(t *testing.T, cl *redistest.Cluster, prefix string, h func(*notification.Event), reg prometheus.Registerer) *redisbroker.Broker {
	t.Helper()
	// As Herald runs it: the slot map is reread often, or a failover stays
	// unseen while the dead primary refuses connections.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ClusterStateReloadInterval: time.Second})
	ap, err := cc.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	b, err := redisbroker.New(ap, h, redisbroker.Options{Prefix: prefix, Cluster: cc, Logger: quiet, HealthCheckInterval: time.Second, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		_ = ap.Close()
		_ = cc.Close()
	})
	return b
}

// TestShardedClusterTopology subscribes users on all three primaries of a
// Cluster and checks that the node holds one pub/sub connection per
// primary, and that delivery resumes without loss when a user's slot
// moves and when its primary is killed and replaced.
func TestShardedClusterTopology(t *testing.T) {
	cl := redistest.StartCluster(t)
	prefix := testPrefix(t)
	channel := func(user string) string { return prefix + "{" + user + "}:c" }
	rec := &seqRecorder{seqs: make(map[string][]uint64)}
	reg := prometheus.NewRegistry()
	sub := clusterBrokerMetrics(t, cl, prefix, rec.handle, reg)
	pub := clusterBroker(t, cl, prefix, func(*notification.Event) {})
	ctx := context.Background()

	// Three users on each primary.
	byPrimary := make(map[string][]string)
	var users []string
	for i := 0; len(byPrimary) < 3 || len(users) < 9; i++ {
		u := fmt.Sprintf("user%d", i)
		p := cl.PrimaryOf(channel(u)).Addr()
		if len(byPrimary[p]) < 3 {
			byPrimary[p] = append(byPrimary[p], u)
			users = append(users, u)
		}
	}
	for _, u := range users {
		if err := sub.Subscribe(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	checkConnections := func(t *testing.T) {
		t.Helper()
		for _, p := range cl.Primaries() {
			list, err := p.Client().ClientList(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
				if strings.Contains(line, " flags=P") || strings.Contains(line, "ssub=") && !strings.Contains(line, "ssub=0") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s has %d pub/sub connections, want 1:\n%s", p.Addr(), n, list)
			}
		}
		for _, u := range users {
			owner := cl.PrimaryOf(channel(u))
			counts, err := owner.Client().PubSubShardNumSub(ctx, channel(u)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if counts[channel(u)] != 1 {
				t.Errorf("%s subscribed %d times on its owner %s, want 1", u, counts[channel(u)], owner.Addr())
			}
		}
	}

	t.Run("one connection per primary", checkConnections)

	// traffic publishes to user until disrupt has run and some more
	// publishes were accepted, then checks that every accepted event was
	// delivered, once and in order.
	traffic := func(t *testing.T, user string, disrupt func()) {
		t.Helper()
		var accepted []uint64
		done := make(chan struct{})
		go func() {
			defer close(done)
			disrupt()
		}()
		after := -1
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ev := brokertest.Event(user, fmt.Sprint(len(accepted)))
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := pub.Publish(pctx, []*notification.Event{ev})
			cancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			accepted = append(accepted, ev.Cursor.Seq)
			if after < 0 {
				select {
				case <-done:
					after = len(accepted)
				default:
				}
			} else if len(accepted) >= after+20 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		<-done
		if after < 0 || len(accepted) < after+20 {
			t.Fatalf("publishing did not resume: %d accepted", len(accepted))
		}
		want := make(map[uint64]bool, len(accepted))
		for _, s := range accepted {
			want[s] = true
		}
		var got []uint64
		for wait := time.Now().Add(15 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			got = rec.of(user)
			if len(got) > 0 && got[len(got)-1] >= accepted[len(accepted)-1] {
				break
			}
		}
		seen := make(map[uint64]bool)
		for i, s := range got {
			if i > 0 && s <= got[i-1] {
				t.Fatalf("delivered out of order or twice: %v", got)
			}
			seen[s] = true
		}
		for _, s := range accepted {
			if !seen[s] {
				t.Fatalf("accepted seq %d not delivered (accepted %v, delivered %v)", s, accepted, got)
			}
		}
	}

	// Redis drops every pub/sub connection: each carries channels of
	// several slots, which go-redis would resubscribe in one SSUBSCRIBE
	// (CROSSSLOT); the broker resubscribes them one by one.
	t.Run("connections dropped", func(t *testing.T) {
		traffic(t, users[1], func() {
			time.Sleep(100 * time.Millisecond)
			for _, p := range cl.Primaries() {
				if err := p.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
					t.Error(err)
				}
			}
		})
		checkConnections(t)
	})

	t.Run("slot moved", func(t *testing.T) {
		u := users[0]
		from := cl.PrimaryOf(channel(u))
		var to *redistest.Server
		for _, p := range cl.Primaries() {
			if p != from {
				to = p
				break
			}
		}
		traffic(t, u, func() {
			time.Sleep(100 * time.Millisecond)
			cl.MoveSlot(channel(u), to)
		})
		checkConnections(t)
	})

	t.Run("primary killed", func(t *testing.T) {
		u := users[len(users)-1]
		traffic(t, u, func() {
			time.Sleep(100 * time.Millisecond)
			killed := cl.KillPrimaryOf(channel(u))
			cl.WaitFailover(killed)
		})
		checkConnections(t)
	})

	// What an operator sees of all that: one connection per current
	// primary, and the refreshes, resubscriptions and backfills that
	// closed the gaps.
	t.Run("metrics", func(t *testing.T) {
		m := gather(t, reg)
		var want []string
		for _, p := range cl.Primaries() {
			want = append(want, "herald_redis_pubsub_connections{shard="+p.Addr()+"} 1")
		}
		sort.Strings(want)
		var got []string
		for k, v := range m {
			if strings.HasPrefix(k, "herald_redis_pubsub_connections{") {
				got = append(got, fmt.Sprintf("%s %g", k, v))
			}
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("connections %v, want %v", got, want)
		}
		for _, k := range []string{"herald_redis_topology_refreshes_total", "herald_redis_resubscriptions_total", "herald_redis_backfills_total{result=ok}"} {
			if m[k] < 1 {
				t.Errorf("%s = %g after a kill, a move and dropped connections", k, m[k])
			}
		}
		if m["herald_redis_resubscriptions_total"] < float64(len(users)) {
			t.Errorf("%g resubscriptions, want at least %d (every channel, when the connections dropped)", m["herald_redis_resubscriptions_total"], len(users))
		}
	})
}

// gather reads reg's metrics as "name{label=value,...}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
