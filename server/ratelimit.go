package server

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/pkg/ratelimit"
	"github.com/heraldhq/herald/server/config"
)

// userLimits are the per-user rate limits of what clients send. Acks
// are limited by notification id, over POST /v1/ack and WebSocket frames
// together; the defaults (HERALD_ACK_RATE, HERALD_ACK_BURST) are far
// above what a client acking each notification it shows ever sends.
type userLimits struct {
	acks    *ratelimit.Limiter
	marks   *ratelimit.Limiter     // requests
	limited *prometheus.CounterVec // ids refused, by transport
}

func newUserLimits(cfg *config.Config, reg prometheus.Registerer) *userLimits {
	l := &userLimits{
		acks:  ratelimit.New(float64(cfg.AckRate), cfg.AckBurst),
		marks: ratelimit.New(float64(cfg.MarkRate), cfg.MarkBurst),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rate_limited_total",
			Help: "Client requests or frames refused by a per-user rate limit, by what (ack, mark) and transport (http, ws), counted per notification id (acks) or request (marks).",
		}, []string{"what", "transport"}),
	}
	reg.MustRegister(l.limited)
	return l
}

// allow takes n from user's bucket of l, counting a refusal.
func (u *userLimits) allow(l *ratelimit.Limiter, what, transport, user string, n int) (bool, time.Duration) {
	ok, retry := l.Allow(user, n)
	if !ok {
		u.limited.WithLabelValues(what, transport).Add(float64(n))
	}
	return ok, retry
}

// writeRateLimited answers 429 rate_limited with Retry-After in whole
// seconds (at least 1).
func writeRateLimited(w http.ResponseWriter, retry time.Duration) {
	secs := max(1, int(math.Ceil(retry.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, codeRateLimited.with("too many requests; retry after "+strconv.Itoa(secs)+"s"))
}
