package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/redisslot"
)

// clusterTimeout bounds how long a cluster may take to form or to fail
// over; generous because test machines are shared and slow.
const clusterTimeout = 60 * time.Second

// ClusterNodeTimeout is the cluster-node-timeout of StartCluster: how long
// a primary may be unreachable before its replica takes over. Short, so
// failover tests stay fast.
const ClusterNodeTimeout = 1000 * time.Millisecond

// Cluster is a Redis Cluster of three primaries with one replica each,
// owned by one test.
type Cluster struct {
	t     testing.TB
	nodes []*Server
}

// StartCluster runs six cluster-enabled redis-servers on free loopback
// ports, joins them with `redis-cli --cluster create --cluster-replicas 1`,
// waits until every node reports cluster_state:ok with all slots assigned
// and every replica is in sync, and stops them when the test ends. It
// skips the test when redis-server or redis-cli is missing, unless
// HERALD_REQUIRE_REDIS=1.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")
	c := &Cluster{t: t}
	for range 6 {
		c.nodes = append(c.nodes, start(t, bin, func(cfg *config) { cfg.cluster = true }, withArgs(
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
			// A replica takes over however long it was out of touch.
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync", "yes",
			"--repl-diskless-sync-delay", "0",
		)))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitHealthy(c.nodes, "form")
	return c
}

// Addrs are the host:port of all six nodes, as seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes are the six servers, primaries and replicas alike.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Client returns a new cluster client, closed when the test ends. It
// reloads the slot map every second: go-redis reloads it on MOVED but not
// when a dead primary refuses connections.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Primaries are the servers that currently own slots, as seen by a live
// node.
func (c *Cluster) Primaries() []*Server {
	c.t.Helper()
	slots := c.slots()
	seen := map[string]bool{}
	var out []*Server
	for _, r := range slots {
		addr := r.Nodes[0].Addr
		if !seen[addr] {
			seen[addr] = true
			out = append(out, c.byAddr(addr))
		}
	}
	return out
}

// PrimaryOf is the server that currently owns key's slot.
func (c *Cluster) PrimaryOf(key string) *Server {
	c.t.Helper()
	slot := int(Slot(key))
	for _, r := range c.slots() {
		if int(r.Start) <= slot && slot <= int(r.End) {
			return c.byAddr(r.Nodes[0].Addr)
		}
	}
	c.t.Fatalf("redistest: no node owns slot %d of %q", slot, key)
	return nil
}

// ReplicaOf is a server replicating primary, with its link up.
func (c *Cluster) ReplicaOf(primary *Server) *Server {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if n == primary || !n.running() {
			continue
		}
		cl := quickClient(n.Addr())
		info, err := cl.Info(ctx, "replication").Result()
		_ = cl.Close()
		if err != nil {
			continue
		}
		f := infoFields(info)
		if f["role"] == "slave" && f["master_port"] == strconv.Itoa(primary.port) && f["master_link_status"] == "up" {
			return n
		}
	}
	c.t.Fatalf("redistest: no replica of %s", primary.Addr())
	return nil
}

// KillPrimaryOf SIGKILLs the primary owning key's slot and returns it.
func (c *Cluster) KillPrimaryOf(key string) *Server {
	c.t.Helper()
	p := c.PrimaryOf(key)
	p.Kill()
	return p
}

// WaitFailover waits until a replica has taken over the slots of the
// killed primary and every live node reports the cluster healthy again.
func (c *Cluster) WaitFailover(killed *Server) {
	c.t.Helper()
	var live []*Server
	for _, n := range c.nodes {
		if n.running() {
			live = append(live, n)
		}
	}
	deadline := time.Now().Add(clusterTimeout)
	for {
		ok := true
		for _, r := range c.slotsFrom(live) {
			if r.Nodes[0].Addr == killed.Addr() {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: no replica took over from %s within %s", killed.Addr(), clusterTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.waitHealthy(live, "fail over")
}

func (c *Cluster) byAddr(addr string) *Server {
	for _, n := range c.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	c.t.Fatalf("redistest: %s is not a node of this cluster", addr)
	return nil
}

func (c *Cluster) slots() []redis.ClusterSlot { return c.slotsFrom(c.nodes) }

// slotsFrom asks the first node of nodes that answers for the slot map.
func (c *Cluster) slotsFrom(nodes []*Server) []redis.ClusterSlot {
	c.t.Helper()
	var lastErr error
	for _, n := range nodes {
		if !n.running() {
			continue
		}
		cl := quickClient(n.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		slots, err := cl.ClusterSlots(ctx).Result()
		cancel()
		_ = cl.Close()
		if err == nil {
			return slots
		}
		lastErr = err
	}
	c.t.Fatalf("redistest: no node answered CLUSTER SLOTS: %v", lastErr)
	return nil
}

// waitHealthy waits until every one of nodes reports cluster_state:ok with
// all slots assigned, agrees on which nodes are primaries, and every replica
// among them has its link to the primary up.
func (c *Cluster) waitHealthy(nodes []*Server, what string) {
	c.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	var why string
	for {
		why = clusterUnhealthy(nodes)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: cluster did not %s within %s: %s", what, clusterTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func clusterUnhealthy(nodes []*Server) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var view string
	for _, n := range nodes {
		cl := quickClient(n.Addr())
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			_ = cl.Close()
			return n.Addr() + ": " + err.Error()
		}
		f := infoFields(info)
		if f["cluster_state"] != "ok" || f["cluster_slots_assigned"] != "16384" || f["cluster_slots_ok"] != "16384" {
			_ = cl.Close()
			return n.Addr() + ": " + strings.Join(strings.Fields(info)[:4], " ")
		}
		repl, err := cl.Info(ctx, "replication").Result()
		if err == nil {
			r := infoFields(repl)
			if r["role"] == "slave" && r["master_link_status"] != "up" {
				err = fmt.Errorf("replica link %s", r["master_link_status"])
			}
		}
		var shards string
		if err == nil {
			var slots []redis.ClusterSlot
			slots, err = cl.ClusterSlots(ctx).Result()
			for _, s := range slots {
				shards += fmt.Sprintf("%d-%d@%s ", s.Start, s.End, s.Nodes[0].Addr)
			}
		}
		_ = cl.Close()
		if err != nil {
			return n.Addr() + ": " + err.Error()
		}
		if view == "" {
			view = shards
		} else if view != shards {
			return "nodes disagree on the slot map"
		}
	}
	return ""
}

// infoFields parses "key:value" lines of INFO or CLUSTER INFO.
func infoFields(info string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			f[k] = v
		}
	}
	return f
}

func quickClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Slot is the Redis Cluster hash slot of key.
func Slot(key string) uint16 { return uint16(redisslot.Of(key)) }

// FlushAll empties every primary, so tests can share one cluster.
func (c *Cluster) FlushAll() {
	c.t.Helper()
	for _, p := range c.Primaries() {
		cl := quickClient(p.Addr())
		err := cl.FlushAll(context.Background()).Err()
		_ = cl.Close()
		if err != nil {
			c.t.Fatalf("redistest: flush %s: %v", p.Addr(), err)
		}
	}
}

// KillAll SIGKILLs every node, as a whole-cluster outage would.
func (c *Cluster) KillAll() {
	for _, n := range c.nodes {
		n.Kill()
	}
}

// RestartAll starts every node again on its port and directory (the
// cluster's shape survives in each node's nodes.conf, its data does not
// without persistence) and waits until the cluster is healthy.
func (c *Cluster) RestartAll() {
	c.t.Helper()
	for _, n := range c.nodes {
		if !n.running() {
			n.Restart()
		}
	}
	c.waitHealthy(c.nodes, "come back")
}

// MoveSlot migrates the slot of key, with its keys, from its primary to the
// primary to, as `redis-cli --cluster reshard` does for each slot, and waits
// until every node agrees on the new owner. Clients see ASK and then MOVED
// meanwhile, as in a live resharding.
func (c *Cluster) MoveSlot(key string, to *Server) {
	c.t.Helper()
	ctx := context.Background()
	from := c.PrimaryOf(key)
	if from == to {
		c.t.Fatalf("redistest: %s already owns the slot of %q", to.Addr(), key)
	}
	slot := int(Slot(key))
	src, dst := quickClient(from.Addr()), quickClient(to.Addr())
	defer src.Close()
	defer dst.Close()
	must := func(what string, err error) {
		if err != nil {
			c.t.Fatalf("redistest: move slot %d: %s: %v", slot, what, err)
		}
	}
	srcID, err := src.Do(ctx, "CLUSTER", "MYID").Text()
	must("myid", err)
	dstID, err := dst.Do(ctx, "CLUSTER", "MYID").Text()
	must("myid", err)
	must("importing", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must("migrating", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		must("getkeysinslot", err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "REPLACE", "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must("migrate", src.Do(ctx, args...).Err())
	}
	must("node on the target", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	must("node on the source", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	for _, p := range c.Primaries() {
		if p != from && p != to {
			cl := quickClient(p.Addr())
			err := cl.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err()
			_ = cl.Close()
			must("node on "+p.Addr(), err)
		}
	}
	c.waitHealthy(c.nodes, "agree on the moved slot")
	if now := c.PrimaryOf(key); now != to {
		c.t.Fatalf("redistest: slot %d is on %s after the move, want %s", slot, now.Addr(), to.Addr())
	}
}
