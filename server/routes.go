package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhq/herald/pkg/notification"
)

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeError(w, errNotFound) })
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, errMethodNotAllowed)
	})

	// Server API (API key).
	r.HandleFunc("/v1/notifications", s.requireAPIKey(handle(s.handleSend))).Methods(http.MethodPost)
	r.HandleFunc("/v1/notifications/{id}", s.requireAPIKey(handle(s.handleDeleteNotification))).Methods(http.MethodDelete)
	r.HandleFunc("/v1/retract", s.requireAPIKey(handle(s.handleRetract))).Methods(http.MethodPost)
	r.HandleFunc("/v1/users/{id}/presence", s.requireAPIKey(handle(s.handlePresence))).Methods(http.MethodGet)
	r.HandleFunc("/v1/users/{id}/read", s.requireAPIKey(handle(s.handleUserMark(notification.StateRead)))).Methods(http.MethodPost)
	r.HandleFunc("/v1/users/{id}/seen", s.requireAPIKey(handle(s.handleUserMark(notification.StateSeen)))).Methods(http.MethodPost)
	r.HandleFunc("/v1/users/{id}/dismiss", s.requireAPIKey(handle(s.handleUserMark(notification.StateDismissed)))).Methods(http.MethodPost)
	r.HandleFunc("/v1/conversations/{id}/members", s.requireAPIKey(handle(s.handleSetMembers))).Methods(http.MethodPut)
	r.HandleFunc("/v1/conversations/{id}/members", s.requireAPIKey(handle(s.handleGetMembers))).Methods(http.MethodGet)

	// Webhooks (provider signatures).
	r.HandleFunc("/webhooks/{provider}", s.handleWebhook).Methods(http.MethodPost)

	// User endpoints (user token); CORS for browser apps on allowed origins.
	user := r.NewRoute().Subrouter()
	user.Use(s.cors)
	user.HandleFunc("/v1/ws", s.requireOrigin(s.requireUser(s.handleWS))).Methods(http.MethodGet)
	user.HandleFunc("/v1/sse", s.requireOrigin(s.requireUser(s.handleSSE))).Methods(http.MethodGet, http.MethodOptions)
	user.HandleFunc("/v1/notifications", s.requireUser(handle(s.handleInbox))).Methods(http.MethodGet, http.MethodOptions)
	user.HandleFunc("/v1/ack", s.requireUser(handle(s.handleAck))).Methods(http.MethodPost, http.MethodOptions)
	user.HandleFunc("/v1/read", s.requireUser(handle(s.handleMark(notification.StateRead)))).Methods(http.MethodPost, http.MethodOptions)
	user.HandleFunc("/v1/seen", s.requireUser(handle(s.handleMark(notification.StateSeen)))).Methods(http.MethodPost, http.MethodOptions)
	user.HandleFunc("/v1/dismiss", s.requireUser(handle(s.handleMark(notification.StateDismissed)))).Methods(http.MethodPost, http.MethodOptions)
	user.HandleFunc("/v1/unread", s.requireUser(handle(s.handleUnread))).Methods(http.MethodGet, http.MethodOptions)
	user.HandleFunc("/v1/devices", s.requireUser(handle(s.handleRegisterDevice))).Methods(http.MethodPost, http.MethodOptions)
	user.HandleFunc("/v1/devices", s.requireUser(handle(s.handleListDevices))).Methods(http.MethodGet)
	user.HandleFunc("/v1/devices", s.requireUser(handle(s.handleLogoutDevices))).Methods(http.MethodDelete)
	user.HandleFunc("/v1/devices/{id}", s.requireUser(handle(s.handleDeleteDevice))).Methods(http.MethodDelete, http.MethodOptions)
	user.HandleFunc("/v1/push/vapid-public-key", s.handleVAPIDKey).Methods(http.MethodGet, http.MethodOptions)
	user.HandleFunc("/v1/preferences", s.requireUser(handle(s.handleGetPreferences))).Methods(http.MethodGet, http.MethodOptions)
	user.HandleFunc("/v1/preferences", s.requireUser(handle(s.handlePutPreferences))).Methods(http.MethodPut)

	// Operations.
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.handleReady).Methods(http.MethodGet)
	if s.cfg.Metrics && s.cfg.MetricsAddr == "" {
		r.Handle("/metrics", s.MetricsHandler()).Methods(http.MethodGet)
	}
	s.webRoutes(r)

	return accessLog(s.log, s.conns.Middleware(s.readDeadline(r)))
}

// MetricsHandler serves the node's Prometheus metrics; it is on the
// public listener at /metrics unless HERALD_METRICS_ADDR moves it to a
// listener of its own or HERALD_METRICS turns it off.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// handleReady is GET /readyz. Anyone may ask, so the answer is only yes
// or no; why not (which often names the back-end's address) goes to the
// log, at most once a period.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.broker.Ready(ctx); err != nil {
		s.warnings.Log(s.log, slog.LevelWarn, "readyz", "not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}
