package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// replicaRecheck is how long a primary's count of connected replicas is
// trusted before it is asked again.
const replicaRecheck = time.Second

// replicaGrace is how long a replica that disconnected is still waited
// for. A primary cut off from its replica and then lost takes with it what
// it accepted meanwhile, so publishes keep failing while a failover may
// still follow (Redis's default cluster-node-timeout is 15s); after it the
// primary goes on alone, its publishes accepted unreplicated.
const replicaGrace = 15 * time.Second

// replicaCounts tracks, per primary, the replicas WAIT asks for.
type replicaCounts struct {
	mu sync.Mutex
	m  map[*redis.Client]*replicaCount
}

type replicaCount struct {
	replid  string    // the primary's replication id: a new primary, a new count
	n       int       // replicas to wait for
	checked time.Time // when n was last asked for
	seen    time.Time // when n replicas were last connected
}

// of returns how many replicas to wait for on node: those connected, or
// more that were connected within replicaGrace. It asks the node when the
// count is older than replicaRecheck; unknown counts as fallback.
func (r *replicaCounts) of(ctx context.Context, node *redis.Client, fallback int) int {
	r.mu.Lock()
	c := r.m[node]
	if c != nil && time.Since(c.checked) < replicaRecheck {
		n := c.n
		r.mu.Unlock()
		return n
	}
	r.mu.Unlock()
	replid, n, err := connectedReplicas(ctx, node)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if c != nil {
			return c.n
		}
		return fallback
	}
	if r.m == nil {
		r.m = make(map[*redis.Client]*replicaCount)
	}
	now := time.Now()
	if c == nil || c.replid != replid || n >= c.n || now.Sub(c.seen) > replicaGrace {
		c = &replicaCount{replid: replid, n: n, seen: now}
		r.m[node] = c
	}
	c.checked = now
	return c.n
}

// connectedReplicas asks a primary for its replication id and how many
// replicas are connected to it.
func connectedReplicas(ctx context.Context, node *redis.Client) (replid string, n int, err error) {
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		return "", 0, err
	}
	var role string
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "role":
			role = v
		case "master_replid":
			replid = v
		case "connected_slaves":
			n, err = strconv.Atoi(v)
		}
	}
	if role != "master" || err != nil {
		return "", 0, fmt.Errorf("unexpected replication info %q", info)
	}
	return replid, n, nil
}
