package redisbroker

import "github.com/prometheus/client_golang/prometheus"

// metrics are what an operator watches through a failover or a reshard:
// the pub/sub connections the node holds, how often it reread the slot
// map, how many channels it subscribed again, and the backfills that
// closed the gaps (or could not).
type metrics struct {
	connections *prometheus.GaugeVec   // by shard: primary address, or "default"
	refreshes   prometheus.Counter     // slot-map rereads that placed users
	resubscribe prometheus.Counter     // channels confirmed again on a new connection
	backfills   *prometheus.CounterVec // by result: ok, failed (retried), lost

	backfillOK, backfillFailed, backfillLost prometheus.Counter // its children
}

// Backfill results.
const (
	backfillOK     = "ok"
	backfillFailed = "failed"
	backfillLost   = "lost"
)

// defaultShard labels the single pub/sub connection of a standalone Redis
// or a Sentinel set.
const defaultShard = "default"

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_redis_pubsub_connections",
			Help: "Pub/sub connections to Redis by shard (the primary's address on a Cluster, else \"default\"): 1 while up.",
		}, []string{"shard"}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_redis_topology_refreshes_total",
			Help: "Cluster slot maps read to place channels on their primaries.",
		}),
		resubscribe: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_redis_resubscriptions_total",
			Help: "User channels subscribed again after a lost connection, a failover or a slot move.",
		}),
		backfills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_redis_backfills_total",
			Help: "Reads of missed events from users' streams, by result: ok, failed (retried) or lost (trimmed before they were read; the sessions reload).",
		}, []string{"result"}),
	}
	m.backfillOK = m.backfills.WithLabelValues(backfillOK)
	m.backfillFailed = m.backfills.WithLabelValues(backfillFailed)
	m.backfillLost = m.backfills.WithLabelValues(backfillLost)
	if reg != nil {
		reg.MustRegister(m.connections, m.refreshes, m.resubscribe, m.backfills)
	}
	return m
}
