package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Webhook outcomes, as counted in herald_webhooks_received_total, beside
// ingest's Accepted, Duplicate and Ignored.
const (
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
		writeError(w, codeUnknownProvider.with("no webhook provider "+name+" is configured"))
		return
	}
	outcome, err := s.receiveWebhook(w, r, p)
	if err != nil {
		writeError(w, err)
	}
	s.metrics.ingest.webhooks.WithLabelValues(name, outcome).Inc()
}

// receiveWebhook answers an accepted webhook itself and returns its
// outcome, or returns the outcome and the error to answer.
func (s *Server) receiveWebhook(w http.ResponseWriter, r *http.Request, p webhook.Provider) (string, error) {
	buf, err := readBody(w, r, s.cfg.WebhookMaxBody)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return whTooLarge, err
		}
		return whInvalid, err
	}
	// Nothing below keeps the body's bytes past the handler: the queued
	// item is encoded afresh from the parsed event.
	defer buf.release()
	body := buf.Bytes()
	if err := p.Verify(r.Header, body, time.Now()); err != nil {
		if !errors.Is(err, webhook.ErrStale) {
			// Whatever else Verify says, the request is not authenticated.
			err = fmt.Errorf("%w: %w", webhook.ErrUnauthorized, err)
		}
		return whUnauthorized, err
	}
	ev, err := p.Parse(r.Header, body)
	if err != nil {
		return whInvalid, payloadError(err)
	}
	ev.Provider = p.Name()
	outcome, err := s.ingest.Accept(r.Context(), s.queue, &ev, body)
	if errors.Is(err, ingest.ErrNotQueued) {
		s.log.Warn("webhook not queued", "provider", ev.Provider, "event", ev.ID, "err", err)
		return whUnavailable, errUnavailable
	}
	if err != nil {
		return whInvalid, payloadError(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": outcome})
	return outcome, nil
}

// payloadError is a payload that cannot be taken as a *webhook.FieldError,
// so that it is answered as invalid_payload with what was wrong.
func payloadError(err error) error {
	var fe *webhook.FieldError
	if errors.As(err, &fe) {
		return err
	}
	return &webhook.FieldError{Reason: err.Error()}
}
