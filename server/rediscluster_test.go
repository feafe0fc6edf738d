package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/redistest"
)

// liveRecorder collects the notification titles a WebSocket receives.
type liveRecorder struct {
	mu     sync.Mutex
	titles []string
}

func (r *liveRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.titles...)
}

// record reads ws until it closes. It never gives up on a quiet socket
// (a read's timeout closes it): a sender may be held off for a while, and
// the node's shutdown at the end of the test ends the read.
func record(ws *wsClient) *liveRecorder {
	r := &liveRecorder{}
	go func() {
		for {
			f, err := ws.next(10 * time.Minute)
			if err != nil {
				return
			}
			if f.Type == "notification" {
				r.mu.Lock()
				r.titles = append(r.titles, f.Notification.Title)
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// clusterNodes starts a Redis Cluster and two Herald nodes on it.
func clusterNodes(t *testing.T) (*redistest.Cluster, [2]*testNode) {
	t.Helper()
	cl := redistest.StartCluster(t)
	use := func(c *configT) { c.RedisClusterAddrs = cl.Addrs() }
	return cl, [2]*testNode{startNode(t, use), startNode(t, use)}
}

// TestTwoNodesOnRedisCluster: users spread over every primary, sessions on
// both nodes, fan-outs sent through both: every live session gets every
// notification once, in its history's order, and every user's history
// holds them all.
func TestTwoNodesOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl, nodes := clusterNodes(t)
	const users, live, sends = 1000, 40, 6
	all := make([]string, users)
	for i := range all {
		all[i] = fmt.Sprint("u", i)
	}
	// The users' keys land on every primary.
	owners := map[string]bool{}
	for _, u := range all {
		owners[cl.PrimaryOf("{"+u+"}").Addr()] = true
	}
	if len(owners) != 3 {
		t.Fatalf("users on %d primaries, want 3", len(owners))
	}
	recs := make([]*liveRecorder, live)
	for i := range live {
		n := nodes[i%2]
		ws := n.mustDialWS(all[i*users/live], "")
		recs[i] = record(ws)
	}
	for i := range live {
		n, u := nodes[i%2], all[i*users/live]
		waitFor(t, "session of "+u, func() bool { return n.srv.Hub().LocalSessions(u) == 1 })
	}
	// Pub/sub is sharded: each live user's channel is subscribed once, on
	// the primary owning its slot, and each node holds at most one pub/sub
	// connection per primary.
	ctx := context.Background()
	for i := range live {
		u := all[i*users/live]
		ch := "herald:{" + u + "}:c"
		owner := cl.PrimaryOf(ch)
		if n, err := owner.Client().PubSubShardNumSub(ctx, ch).Result(); err != nil || n[ch] != 1 {
			t.Fatalf("%s: %d sharded subscriptions on its owner %s (%v), want 1", u, n[ch], owner.Addr(), err)
		}
	}
	for _, p := range cl.Primaries() {
		list, err := p.Client().ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(list, " flags=P "); n == 0 || n > len(nodes) {
			t.Fatalf("%s has %d pub/sub connections, want 1 to %d:\n%s", p.Addr(), n, len(nodes), list)
		}
	}
	var wg sync.WaitGroup
	for k := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[k%2].mustSend(all, "fan-"+strconv.Itoa(k))
		}()
	}
	wg.Wait()
	for i, r := range recs {
		u := all[i*users/live]
		waitFor(t, u+" gets every fan-out", func() bool { return len(r.got()) >= sends })
		got := r.got()
		seen := map[string]bool{}
		for _, title := range got {
			if seen[title] {
				t.Fatalf("%s got %q twice: %v", u, title, got)
			}
			seen[title] = true
		}
		// Live order is the history's order.
		hist := nodes[(i+1)%2].inbox(u)
		if len(hist) != sends || len(got) != sends {
			t.Fatalf("%s: live %v, history of %d", u, got, len(hist))
		}
		for j := range hist {
			if hist[j].Title != got[j] {
				t.Fatalf("%s: live order %v differs from the history's at %d (%q)", u, got, j, hist[j].Title)
			}
		}
	}
	for _, u := range []string{all[1], all[500], all[999]} {
		if got := nodes[0].inbox(u); len(got) != sends {
			t.Fatalf("history of %s holds %d, want %d", u, len(got), sends)
		}
	}
	for _, p := range cl.Primaries() {
		c := p.Client()
		if n, err := c.DBSize(context.Background()).Result(); err != nil || n == 0 {
			t.Fatalf("primary %s holds %d keys (%v)", p.Addr(), n, err)
		}
	}
}

// TestRedisClusterPrimaryKilledUnderTraffic: notifications flow to users
// on every primary through two nodes while the primary of some of them is
// SIGKILLed and its replica promoted.
func TestRedisClusterPrimaryKilledUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl, nodes := clusterNodes(t)
	var victim *redistest.Server
	var owner [2]string // the victim's channels: a user's slot on each node with some
	trafficThroughFailover(t, nodes,
		func(users []string) (affected map[string]bool) {
			victim = cl.PrimaryOf("{" + users[0] + "}")
			affected = map[string]bool{}
			for i, u := range users {
				affected[u] = cl.PrimaryOf("{"+u+"}") == victim
				if affected[u] {
					owner[i%2] = "{" + u + "}"
				}
			}
			victim.Kill()
			return affected
		},
		func() { cl.WaitFailover(victim) })
	// What /metrics shows of it: a node that had channels on the dead
	// primary subscribed them again on the promoted replica, and no node
	// counts a connection to the dead one.
	for i, n := range nodes {
		if v := n.metric(`herald_redis_pubsub_connections{shard="` + victim.Addr() + `"} `); v != "" {
			t.Errorf("node %d still counts a connection to the dead primary: %s", i, v)
		}
		if owner[i] == "" {
			continue
		}
		if v := n.metric("herald_redis_resubscriptions_total "); v == "" || v == "0" {
			t.Errorf("node %d: herald_redis_resubscriptions_total %q after its primary died", i, v)
		}
		promoted := cl.PrimaryOf(owner[i]).Addr()
		if v := n.metric(`herald_redis_pubsub_connections{shard="` + promoted + `"} `); v != "1" {
			t.Errorf("node %d: connections to the promoted primary %s %q, want 1", i, promoted, v)
		}
	}
}

// TestRedisClusterSlotMovedUnderTraffic: the same while the slot of one
// user, with its history, moves to another primary (ASK, then MOVED).
func TestRedisClusterSlotMovedUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl, nodes := clusterNodes(t)
	trafficThroughFailover(t, nodes,
		func(users []string) map[string]bool {
			key := "{" + users[0] + "}"
			from := cl.PrimaryOf(key)
			var to *redistest.Server
			for _, p := range cl.Primaries() {
				if p != from {
					to = p
				}
			}
			cl.MoveSlot(key, to)
			return map[string]bool{users[0]: true}
		},
		func() {})
}

// TestRedisSentinelPrimaryKilledUnderTraffic: the same with the primary of
// a Sentinel set, whose replica the Sentinels promote.
func TestRedisSentinelPrimaryKilledUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Sentinel set")
	}
	s := redistest.StartSentinel(t)
	use := func(c *configT) { c.RedisSentinelAddrs, c.RedisSentinelMaster = s.Addrs(), s.MasterName() }
	nodes := [2]*testNode{startNode(t, use), startNode(t, use)}
	var victim *redistest.Server
	trafficThroughFailover(t, nodes,
		func(users []string) map[string]bool {
			victim = s.KillPrimary()
			affected := map[string]bool{}
			for _, u := range users {
				affected[u] = true
			}
			return affected
		},
		func() { s.WaitFailover(victim) })
}

// trafficThroughFailover runs senders through both nodes, each retrying
// under the same id what got no 202, calls kill a second in, waits for the
// failover (or move) and a second more, and then checks that every accepted
// notification reached its user's live session exactly once, in order.
func trafficThroughFailover(t *testing.T, nodes [2]*testNode, kill func(users []string) (affected map[string]bool), wait func()) {
	t.Helper()
	const users = 12
	names := make([]string, users)
	recs := make([]*liveRecorder, users)
	for i := range users {
		names[i] = fmt.Sprint("k", i)
		recs[i] = record(nodes[i%2].mustDialWS(names[i], ""))
	}
	for i, u := range names {
		n := nodes[i%2]
		waitFor(t, "session of "+u, func() bool { return n.srv.Hub().LocalSessions(u) == 1 })
	}

	stop := make(chan struct{})
	accepted := make([][]string, users)
	var wg sync.WaitGroup
	for i, u := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				title := fmt.Sprintf("%s-%04d", u, k)
				req := map[string]any{"id": title, "to": []string{u}, "title": title}
				// A request cut off mid-way holds its id for a minute
				// (idempotencyInUse): retries answer 409 meanwhile.
				deadline := time.Now().Add(90 * time.Second)
				for {
					// Through either node: a retry may land on the other.
					status, body := nodes[(i+k)%2].send(req)
					if status == http.StatusAccepted {
						accepted[i] = append(accepted[i], title)
						break
					}
					if status < 500 && status != http.StatusConflict {
						t.Errorf("send %s: %d %s", title, status, body)
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("send %s: still %d after 90s: %s", title, status, body)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	affected := kill(names)
	wait()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	total, hit := 0, 0
	for i, a := range accepted {
		total += len(a)
		if affected[names[i]] {
			hit += len(a)
		}
	}
	t.Logf("%d notifications accepted, %d of them to the affected users", total, hit)
	for i, u := range names {
		want := accepted[i]
		r := recs[i]
		deadline := time.Now().Add(20 * time.Second)
		for len(r.got()) < len(want) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		got := r.got()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			var hist []string
			for _, e := range nodes[i%2].inbox(u) {
				hist = append(hist, e.Title)
			}
			t.Errorf("%s (affected: %v): live %d, accepted %d\nlive     %v\naccepted %v\nhistory  %v",
				u, affected[u], len(got), len(want), got, want, hist)
		}
	}
}
