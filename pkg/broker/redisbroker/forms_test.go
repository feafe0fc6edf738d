package redisbroker_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/redistest"
)

// clientFactory gives brokers over their own client from newClient, as
// separate Herald processes have, each wrapped in an autopipeliner as
// Herald runs them.
func clientFactory(newClient func() redis.UniversalClient, opts redisbroker.Options) brokertest.Factory {
	return func(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker {
		o := opts
		o.Retention = r
		o.Prefix = testPrefix(t)
		o.Logger = quiet
		c := newClient()
		if cc, ok := c.(*redis.ClusterClient); ok && o.Sharded {
			o.Cluster = cc
		}
		ap, err := c.(interface {
			AutoPipeline() (*redis.AutoPipeliner, error)
		}).AutoPipeline()
		if err != nil {
			t.Fatal(err)
		}
		b, err := redisbroker.New(ap, h, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = b.Close()
			_ = ap.Close()
			_ = c.Close()
		})
		return b
	}
}

// TestConformanceOnRedisCluster runs the suites against a 3-primary /
// 3-replica Redis Cluster, with sharded pub/sub as Herald runs it there.
func TestConformanceOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	f := clientFactory(func() redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	}, redisbroker.Options{Sharded: true})
	brokertest.Run(t, f)
	brokertest.RunCluster(t, f)
}

// TestConformanceOnRedisSentinel runs the suites against a primary found
// through three Sentinels.
func TestConformanceOnRedisSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	f := clientFactory(func() redis.UniversalClient {
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName(), SentinelAddrs: s.Addrs()})
	}, redisbroker.Options{})
	brokertest.Run(t, f)
	brokertest.RunCluster(t, f)
}
