package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/notification"
)

// sseRetry is the reconnect delay hint sent to EventSource clients.
const sseRetry = "retry: 2000\n\n"

// sseWriter is the hub's Writer over one event stream. The hub's writer
// goroutine writes while the handler goroutine waits for the end, and the
// handler returns only after Detach has waited out the writer.
type sseWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	once sync.Once
	done chan struct{}
}

func (w *sseWriter) deadline(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok {
		_ = w.rc.SetWriteDeadline(d)
	} else {
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
}

func (w *sseWriter) WriteEvents(ctx context.Context, events []*notification.Event) error {
	w.deadline(ctx)
	for _, ev := range events {
		if _, err := w.w.Write(ev.SSEFrame()); err != nil {
			return err
		}
	}
	return w.rc.Flush()
}

func (w *sseWriter) KeepAlive(ctx context.Context) error {
	w.deadline(ctx)
	if _, err := w.w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return w.rc.Flush()
}

func (w *sseWriter) Close(hub.CloseReason) {
	w.once.Do(func() { close(w.done) })
}

// handleSSE is GET /v1/sse. Resume with Last-Event-ID or ?since=.
func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		writeError(w, errf(http.StatusForbidden, "origin_not_allowed", "origin not allowed"))
		return
	}
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("since")
	}
	since, resume, err := parseSince(raw)
	if err != nil {
		writeError(w, err)
		return
	}
	claims := userClaims(r)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), done: make(chan struct{})}
	if _, err := w.Write([]byte(sseRetry)); err != nil {
		return
	}
	if err := sw.rc.Flush(); err != nil {
		return
	}
	ctx := r.Context()
	sess, err := s.hub.Attach(ctx, hub.AttachRequest{
		User: claims.Subject, SessionID: claims.SessionID, Transport: "sse",
		Since: since, Resume: resume, Writer: sw,
	})
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("sse attach failed", "user", claims.Subject, "err", err)
		}
		return
	}
	defer s.hub.Detach(sess)
	select {
	case <-ctx.Done():
	case <-sw.done:
	}
}
