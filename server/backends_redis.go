package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
	"github.com/heraldhq/herald/server/config"
)

// clusterStateReload is how often a Redis Cluster client rereads the slot
// map. go-redis rereads it on MOVED, but not when a primary that died
// refuses connections: until the next reload the node keeps dialling it,
// so the reload bounds how long a failover stays unseen.
const clusterStateReload = 2 * time.Second

// newRedisClient builds the client of cfg's Redis form: one server
// (HERALD_REDIS_URL), a Redis Cluster or a Sentinel-watched primary.
func newRedisClient(cfg *config.Config) (redis.UniversalClient, error) {
	var tlsConfig *tls.Config
	if cfg.RedisTLS {
		// The server name comes from each node's address.
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	switch {
	case len(cfg.RedisClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                      cfg.RedisClusterAddrs,
			Username:                   cfg.RedisUsername,
			Password:                   cfg.RedisPassword,
			TLSConfig:                  tlsConfig,
			ClusterStateReloadInterval: clusterStateReload,
		}), nil
	case len(cfg.RedisSentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    cfg.RedisSentinelMaster,
			SentinelAddrs: cfg.RedisSentinelAddrs,
			Username:      cfg.RedisUsername,
			Password:      cfg.RedisPassword,
			TLSConfig:     tlsConfig,
			// The Sentinels have credentials of their own.
			SentinelUsername: cfg.RedisSentinelUsername,
			SentinelPassword: cfg.RedisSentinelPassword,
		}), nil
	default:
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("HERALD_REDIS_URL: %w", err)
		}
		return redis.NewClient(opt), nil
	}
}

// credentialsError names the setting to fix when err is Redis or a
// Sentinel refusing the credentials, and is nil for any other error.
func credentialsError(cfg *config.Config, err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "WRONGPASS") && !strings.Contains(msg, "NOAUTH") && !strings.Contains(msg, "NOPERM") {
		return nil
	}
	if len(cfg.RedisSentinelAddrs) > 0 && strings.Contains(msg, "sentinels") {
		return fmt.Errorf("redis sentinels refuse the credentials (HERALD_REDIS_SENTINEL_USERNAME, HERALD_REDIS_SENTINEL_PASSWORD): %w", err)
	}
	return fmt.Errorf("redis refuses the credentials (HERALD_REDIS_USERNAME, HERALD_REDIS_PASSWORD, or those of HERALD_REDIS_URL): %w", err)
}

// autoPipeliner is what the Redis clients of every form offer.
type autoPipeliner interface {
	AutoPipeline() (*redis.AutoPipeliner, error)
}

// openRedis connects to Redis and builds the cluster back-ends.
func openRedis(ctx context.Context, cfg *config.Config, r broker.Retention, log *slog.Logger, reg prometheus.Registerer) (*backends, error) {
	client, err := newRedisClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := client.Ping(ctx).Err(); err != nil {
		// Redis that is down may come back; credentials it refuses will
		// not get better by waiting.
		if cerr := credentialsError(cfg, err); cerr != nil {
			_ = client.Close()
			return nil, cerr
		}
		log.Warn("redis not reachable yet; will keep trying", "err", err)
	}
	// Commands issued by concurrent requests and workers share pipelines:
	// one write and one read on each side carry what would otherwise be a
	// round trip each.
	apc, ok := client.(autoPipeliner)
	if !ok {
		_ = client.Close()
		return nil, fmt.Errorf("redis autopipeline: %T has none", client)
	}
	ap, err := apc.AutoPipeline()
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis autopipeline: %w", err)
	}
	st := redisstore.New(ap, redisstore.Options{NodeID: cfg.NodeID, PresenceTTL: cfg.PresenceTTL, Logger: log})
	bo := redisbroker.Options{
		Retention: r, Sharded: cfg.RedisSharded, Logger: log,
		// WAIT counts the writes of its own connection, which the
		// autopipeliner does not keep together: publishes that wait for
		// replicas go through the client itself.
		Direct:      client,
		MinReplicas: cfg.RedisMinReplicas, ReplicaTimeout: cfg.RedisReplicaTimeout,
		Metrics: reg,
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		// On a Cluster pub/sub is always sharded, one connection per primary.
		bo.Cluster = cc
	}
	b, err := redisbroker.New(ap, nil, bo)
	if err != nil {
		_ = st.Close()
		_ = ap.Close()
		_ = client.Close()
		return nil, fmt.Errorf("redis broker: %w", err)
	}
	return &backends{
		broker:   b,
		idem:     st,
		presence: st,
		queue:    st.Queue("webhooks", redisstore.QueueOptions{Options: queueOptions(cfg), Partitions: cfg.WebhookQueuePartitions}),
		members:  st,
		push:     st,
		once:     st,
		counter:  st,
		prefs:    ingest.KVPreferences{KV: st, NotFound: func(err error) bool { return errors.Is(err, redisstore.ErrNotFound) }},
		closers:  []func() error{client.Close, ap.Close, st.Close, b.Close},
	}, nil
}
