package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/lograte"
	"github.com/heraldhq/herald/pkg/webhook"
	"github.com/heraldhq/herald/pkg/webhook/amity"
	"github.com/heraldhq/herald/pkg/webhook/cometchat"
	"github.com/heraldhq/herald/pkg/webhook/notifly"
	"github.com/heraldhq/herald/pkg/webhook/sendbird"
	"github.com/heraldhq/herald/pkg/webhook/standard"
	"github.com/heraldhq/herald/pkg/webhook/stream"
	"github.com/heraldhq/herald/pkg/webhook/talkjs"
	"github.com/heraldhq/herald/server/config"
)

// providers builds the webhook providers the configuration has
// credentials for; the others' endpoints answer 404.
func providers(cfg *config.Config) (map[string]webhook.Provider, error) {
	list := []webhook.Provider{}
	if cfg.TalkJSSecret != "" {
		list = append(list, talkjs.New(cfg.TalkJSSecret))
	}
	if cfg.CometChatUser != "" || cfg.CometChatPassword != "" {
		list = append(list, cometchat.New(cfg.CometChatUser, cfg.CometChatPassword))
	}
	if cfg.AmitySecret != "" {
		list = append(list, amity.New(cfg.AmitySecret))
	}
	if cfg.NotiflySecret != "" {
		list = append(list, notifly.New(cfg.NotiflySecret))
	}
	if cfg.WebhookSecret != "" {
		p, err := standard.New(cfg.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("HERALD_WEBHOOK_SECRET: %w", err)
		}
		list = append(list, p)
	}
	if cfg.StreamSecret != "" {
		list = append(list, stream.New(cfg.StreamSecret))
	}
	if cfg.SendbirdToken != "" {
		list = append(list, sendbird.New(cfg.SendbirdToken))
	}
	m := make(map[string]webhook.Provider, len(list))
	for _, p := range list {
		m[p.Name()] = p
	}
	return m, nil
}

// ingestMetrics count webhooks and their processing.
type ingestMetrics struct {
	webhooks  *prometheus.CounterVec   // provider, outcome
	processed *prometheus.CounterVec   // provider, result
	latency   *prometheus.HistogramVec // provider
	dropped   *prometheus.CounterVec   // provider, field
	// unrecorded counts events published but not recorded as done.
	unrecorded prometheus.Counter
	log        *slog.Logger
	warnings   *lograte.Limiter
}

func newIngestMetrics(reg prometheus.Registerer, s *Server) *ingestMetrics {
	m := &ingestMetrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_webhooks_received_total",
			Help: "Webhooks received, by provider and outcome (accepted, duplicate, ignored, unauthorized, invalid, too_large, unavailable).",
		}, []string{"provider", "outcome"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_webhook_events_processed_total",
			Help: "Queued webhook events processed, by provider and result (notified, read, skipped, failed, dead_letter).",
		}, []string{"provider", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_webhook_processing_seconds",
			Help:    "Time from a webhook's 200 to its notifications being published.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120},
		}, []string{"provider"}),
	}
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_webhook_input_dropped_total",
		Help: "Invalid input left out of processed webhook events, by provider and field: recipient (ids skipped), url, icon, template_url (notifications sent without it).",
	}, []string{"provider", "field"})
	m.log, m.warnings = s.log, s.warnings
	m.unrecorded = s.unrecorded.WithLabelValues("webhook")
	stats := func(pick func(depth, dead int64) int64) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			depth, dead, err := s.queue.Stats(ctx)
			if err != nil {
				return -1
			}
			return float64(pick(depth, dead))
		}
	}
	coverage := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_webhook_event_coverage_ratio",
		Help: "Event types Herald acts on and has enabled, over the provider's documented event types.",
	}, []string{"provider"})
	for name, p := range s.providers {
		known := p.KnownEventTypes()
		if len(known) == 0 {
			continue
		}
		on := 0
		for _, typ := range p.EventTypes() {
			if s.ingest.Enabled(name, typ) {
				on++
			}
		}
		coverage.WithLabelValues(name).Set(float64(on) / float64(len(known)))
	}
	reg.MustRegister(m.webhooks, m.processed, m.latency, m.dropped, coverage,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_webhook_queue_depth", Help: "Webhook events queued and not yet processed (-1: queue unreachable).",
		}, stats(func(depth, _ int64) int64 { return depth })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_webhook_dead_letters", Help: "Webhook events that failed every attempt (-1: queue unreachable).",
		}, stats(func(_, dead int64) int64 { return dead })),
	)
	return m
}

// observe records one processed queue item.
func (m *ingestMetrics) observe(r ingest.Result) {
	provider := "unknown"
	if r.Event != nil {
		provider = r.Event.Provider
	}
	result := "notified"
	switch {
	case r.Dead:
		result = "dead_letter"
	case r.Err != nil:
		result = "failed"
	case r.Outcome.Skipped != "":
		result = "skipped"
	case r.Outcome.Read > 0:
		result = "read"
	}
	m.processed.WithLabelValues(provider, result).Inc()
	if r.Err == nil && r.Latency > 0 {
		m.latency.WithLabelValues(provider).Observe(r.Latency.Seconds())
	}
	if r.Outcome.Unrecorded != nil {
		m.unrecorded.Inc()
	}
	if o := &r.Outcome; o.BadRecipients > 0 || len(o.Dropped) > 0 {
		m.observeDropped(r)
	}
}

// observeDropped counts and logs (throttled) the input an event carried
// that processing left out.
func (m *ingestMetrics) observeDropped(r ingest.Result) {
	o := &r.Outcome
	if o.BadRecipients > 0 {
		m.dropped.WithLabelValues(r.Event.Provider, "recipient").Add(float64(o.BadRecipients))
	}
	for field, n := range o.Dropped {
		m.dropped.WithLabelValues(r.Event.Provider, field).Add(float64(n))
	}
	m.warnings.Log(m.log, slog.LevelWarn, "webhook input dropped:"+r.Event.Provider, "webhook input dropped",
		"provider", r.Event.Provider, "event", r.Event.ID, "type", r.Event.Type,
		"bad_recipients", o.BadRecipients, "dropped", o.Dropped)
}

// setupIngest builds the webhook providers, the processor and its metrics.
func (s *Server) setupIngest(cfg *config.Config) error {
	var err error
	if s.providers, err = providers(cfg); err != nil {
		return err
	}
	tpl := make(map[string]map[string]ingest.TemplateText, len(cfg.Templates))
	for key, locales := range cfg.Templates {
		tpl[key] = make(map[string]ingest.TemplateText, len(locales))
		for l, t := range locales {
			tpl[key][l] = ingest.TemplateText{Title: t.Title, Body: t.Body, URL: t.URL}
		}
	}
	templates, err := ingest.NewTemplates(tpl)
	if err != nil {
		return err
	}
	s.queue = s.backends.queue
	s.ingest = ingest.New(s.backends.members, s.backends.prefs, s.backends.counter, s.delivery, s.backends.once, ingest.Options{
		Disabled:       !cfg.WebhooksEnabled,
		Events:         cfg.Events,
		Templates:      templates,
		ThrottleWindow: cfg.ThrottleWindow,
		InUse:          cfg.WebhookRetryAfter,
		Reads:          providerReads{s},
	})
	s.metrics.ingest = newIngestMetrics(s.reg, s)
	return nil
}

// startWorkers drains the webhook queue until stopWorkers.
func (s *Server) startWorkers(log *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopWorkers = cancel
	s.workersDone = make(chan struct{})
	go func() {
		defer close(s.workersDone)
		ingest.Run(ctx, s.queue, s.ingest, ingest.WorkerOptions{
			Workers:  s.cfg.WebhookWorkers,
			Logger:   log,
			OnResult: s.metrics.ingest.observe,
		})
	}()
}

// drainWorkers stops the workers and waits for the items in hand.
func (s *Server) drainWorkers(ctx context.Context) error {
	if s.stopWorkers == nil {
		return nil
	}
	s.stopWorkers()
	select {
	case <-s.workersDone:
		return nil
	case <-ctx.Done():
		return errors.New("webhook workers did not finish in time")
	}
}
