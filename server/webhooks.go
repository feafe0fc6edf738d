package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/webhook"
)

// webhookQueue is the durable queue between a webhook's 200 and the workers.
type webhookQueue interface {
	ingest.Queue
	Enqueue(ctx context.Context, key string, body []byte) (dup bool, err error)
	Stats(ctx context.Context) (depth, dead int64, err error)
}

// Webhook outcomes, as counted in herald_webhooks_received_total.
const (
	whAccepted     = "accepted"
	whDuplicate    = "duplicate"
	whIgnored      = "ignored"
	whUnauthorized = "unauthorized"
	whInvalid      = "invalid"
	whTooLarge     = "too_large"
	whUnavailable  = "unavailable"
)

// handleWebhook is POST /webhooks/{provider}: read the raw body within the
// limit, verify, parse, and queue durably before answering 200.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["provider"]
	p := s.providers[name]
	if p == nil {
		writeError(w, errf(http.StatusNotFound, "unknown_provider", "no webhook provider "+name+" is configured"))
		return
	}
	outcome := s.receiveWebhook(w, r, p)
	s.metrics.ingest.webhooks.WithLabelValues(name, outcome).Inc()
}

func (s *Server) receiveWebhook(w http.ResponseWriter, r *http.Request, p webhook.Provider) string {
	buf, err := readBody(w, r, s.cfg.WebhookMaxBody)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeError(w, errf(http.StatusRequestEntityTooLarge, "body_too_large", "webhook body over the limit"))
			return whTooLarge
		}
		writeError(w, err)
		return whInvalid
	}
	// Nothing below keeps the body's bytes past the handler: the queued
	// item is encoded afresh from the parsed event.
	defer buf.release()
	body := buf.Bytes()
	if err := p.Verify(r.Header, body, time.Now()); err != nil {
		if errors.Is(err, webhook.ErrStale) {
			writeError(w, errf(http.StatusUnauthorized, "stale_timestamp", "timestamp outside the allowed window"))
		} else {
			writeError(w, errf(http.StatusUnauthorized, "invalid_signature", "bad or missing signature"))
		}
		return whUnauthorized
	}
	ev, err := p.Parse(r.Header, body)
	if err != nil {
		var fe *webhook.FieldError
		if errors.As(err, &fe) {
			msg := fe.Reason
			if fe.Field != "" {
				msg = fe.Field + ": " + fe.Reason
			}
			writeError(w, errf(http.StatusBadRequest, "invalid_payload", msg))
		} else {
			writeError(w, errf(http.StatusBadRequest, "invalid_payload", err.Error()))
		}
		return whInvalid
	}
	ev.Provider = p.Name()
	if ev.Kind == webhook.KindIgnore || (ev.Kind != webhook.KindMembership && ev.Members == nil && !s.ingest.Enabled(ev.Provider, ev.Type)) {
		writeJSON(w, http.StatusOK, map[string]string{"status": whIgnored})
		return whIgnored
	}
	if ev.ID == "" {
		sum := sha256.Sum256(body)
		ev.ID = "sha256:" + hex.EncodeToString(sum[:16])
	}
	item, err := json.Marshal(&ev)
	if err != nil {
		writeError(w, errf(http.StatusBadRequest, "invalid_payload", err.Error()))
		return whInvalid
	}
	dup, err := s.queue.Enqueue(r.Context(), ev.Provider+":"+ev.ID, item)
	if err != nil {
		s.log.Warn("webhook not queued", "provider", ev.Provider, "event", ev.ID, "err", err)
		writeError(w, errUnavailable)
		return whUnavailable
	}
	if dup {
		writeJSON(w, http.StatusOK, map[string]string{"status": whDuplicate})
		return whDuplicate
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": whAccepted})
	return whAccepted
}
