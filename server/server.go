// Package server is Herald's HTTP surface and process wiring: it loads the
// back-ends for the configured mode, builds the hub, and serves the API,
// the live transports, health and metrics.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/idempotency"
	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/lograte"
	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/pkg/transport/peerwatch"
	"github.com/heraldhq/herald/pkg/webhook"
	"github.com/heraldhq/herald/server/config"
)

// warnPeriod is the least time between two log lines of one repeated
// warning.
const warnPeriod = 30 * time.Second

// Server is one Herald node.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	hub      *hub.Hub
	broker   broker.Broker
	idem     idempotency.Store
	backends *backends
	verifier tokenVerifier
	apiKey   string
	peers    *peerwatch.Watcher // nil where unsupported

	warnings *lograte.Limiter // repeated warnings, one line a period
	conns    *connLimiter
	reg      *prometheus.Registry
	delivery *delivery.Pipeline
	// acksDropped counts acks over the fallback's per-user cap.
	acksDropped prometheus.Counter
	// unrecorded counts idempotency records that could not be completed
	// after the work was done, by source (api, webhook).
	unrecorded *prometheus.CounterVec
	metrics    struct{ ingest *ingestMetrics }

	// Webhook ingestion.
	providers   map[string]webhook.Provider
	queue       queue.Queue
	ingest      *ingest.Processor
	stopWorkers context.CancelFunc
	workersDone chan struct{}

	push   *pushState
	limits *userLimits

	refusedOrigins *lograte.Limiter // each refused browser origin logged once a minute

	handler http.Handler
	http    *http.Server
}

// New opens the back-ends of cfg's mode (embedded unless Redis is configured)
// and builds a node ready to serve. cfg must be complete: secrets already
// resolved (see Prepare).
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	verifier, err := token.NewVerifier(token.VerifierOptions{Secret: []byte(cfg.JWTSecret), JWKSURL: cfg.JWKSURL})
	if err != nil {
		return nil, fmt.Errorf("token verifier: %w", err)
	}
	s := &Server{cfg: cfg, log: log, verifier: verifier, apiKey: cfg.APIKey, reg: prometheus.NewRegistry(),
		warnings: lograte.New(warnPeriod), refusedOrigins: lograte.New(refusedLogEvery)}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.unrecorded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_idempotency_complete_failures_total",
		Help: "Work done whose idempotency record could not be completed, by source (api, webhook): a retry of it is done again.",
	}, []string{"source"})
	s.reg.MustRegister(s.unrecorded)
	if s.conns, err = newConnLimiter(cfg.MaxConnsPerIP, cfg.TrustedProxies, s.reg); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}

	// The broker delivers into the hub, and the hub reads the broker: the
	// hub registers itself as the broker's handler once it exists, before
	// any subscription is made.
	retention := broker.Retention{MaxCount: cfg.HistoryMaxCount, MaxAge: cfg.HistoryMaxAge}
	if cfg.UsesRedis() {
		s.backends, err = openRedis(ctx, cfg, retention, log, s.reg)
	} else {
		s.backends, err = openEmbedded(cfg, retention, log)
	}
	if err != nil {
		return nil, err
	}
	s.broker, s.idem = s.backends.broker, s.backends.idem
	h := hub.New(s.broker, s.backends.presence, hub.Options{
		SessionQueue:      cfg.SessionQueue,
		SessionQueueBytes: cfg.SessionQueueBytes,
		WriteTimeout:      cfg.WriteTimeout,
		KeepAlive:         cfg.PingInterval,
		Logger:            log,
		Metrics:           hub.NewMetrics(s.reg),
		// The oldest session closes when a new one exceeds the cap.
		MaxSessionsPerUser: cfg.MaxSessionsPerUser,
	})
	s.hub = h
	// Counted whether or not push is on, as it was by the hub.
	s.acksDropped = delivery.NewAcksDropped(s.reg)
	s.limits = newUserLimits(cfg, s.reg)
	if s.peers, err = peerwatch.New(); err != nil {
		s.peers = nil
		log.Info("peer hang-up watcher unavailable; idle SSE streams end at a failed heartbeat", "err", err)
	}
	if err := s.setupPush(ctx, cfg); err != nil {
		_ = s.backends.close()
		return nil, err
	}
	s.delivery = delivery.New(delivery.Options{Broker: s.broker, Fallback: s.push.fallback, Metrics: s.reg})
	h.RegisterAckHandler(s.delivery)
	if err := s.setupIngest(cfg); err != nil {
		_ = s.backends.close()
		return nil, err
	}
	s.startWorkers(log)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the node's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Hub returns the node's hub.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	ln = s.conns.Listener(ln)
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, closes live sessions (WebSockets
// with 1012 so clients reconnect to another node), waits for requests in
// flight, then closes the back-ends.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	httpDone := make(chan error, 1)
	if s.http != nil {
		go func() { httpDone <- s.http.Shutdown(ctx) }()
	} else {
		httpDone <- nil
	}
	if err := s.drainWorkers(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.hub.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := <-httpDone; err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := s.stopPush(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.peers != nil {
		_ = s.peers.Close()
	}
	if err := s.backends.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
