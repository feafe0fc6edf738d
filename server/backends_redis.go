package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
	"github.com/heraldhq/herald/server/config"
)

// openRedis connects to Redis and builds the cluster back-ends.
func openRedis(ctx context.Context, cfg *config.Config, r broker.Retention, h broker.Handler, log *slog.Logger) (*backends, error) {
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("HERALD_REDIS_URL: %w", err)
	}
	client := redis.NewClient(opt)
	if err := client.Ping(ctx).Err(); err != nil {
		log.Warn("redis not reachable yet; will keep trying", "err", err)
	}
	// Commands issued by concurrent requests and workers share pipelines:
	// one write and one read on each side carry what would otherwise be a
	// round trip each.
	ap, err := client.AutoPipeline()
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis autopipeline: %w", err)
	}
	st := redisstore.New(ap, redisstore.Options{NodeID: cfg.NodeID, PresenceTTL: cfg.PresenceTTL, Logger: log})
	b, err := redisbroker.New(ap, h, redisbroker.Options{Retention: r, Sharded: cfg.RedisSharded, Logger: log})
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
		queue:    st.Queue("webhooks", queueOptions(cfg)),
		members:  st,
		push:     st,
		once:     st,
		counter:  st,
		prefs:    ingest.KVPreferences{KV: st, NotFound: func(err error) bool { return errors.Is(err, redisstore.ErrNotFound) }},
		closers:  []func() error{client.Close, ap.Close, st.Close, b.Close},
	}, nil
}
