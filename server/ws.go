package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/notification"
)

// wsStatusTokenExpired closes a WebSocket whose token expired; clients
// reconnect with a fresh token.
const wsStatusTokenExpired websocket.StatusCode = 4001

// wsStatusTooManySessions closes a user's oldest WebSocket on a node when
// a new one takes the user over HERALD_MAX_SESSIONS_PER_USER. Clients
// should not reconnect on it: a newer tab of theirs holds the place.
const wsStatusTooManySessions websocket.StatusCode = 4008

// wsWriter is the hub's Writer over one WebSocket: notification frames go
// straight to the connection, the rest through the library.
type wsWriter struct {
	c    *websocket.Conn
	conn *wsConn
}

func (w *wsWriter) WriteEvents(deadline time.Time, events []*notification.Event) error {
	return w.conn.writeEvents(deadline, events)
}

// wsTryWriter is a wsWriter over a plain socket, which the hub's writer
// pool can write to without waiting.
type wsTryWriter struct{ *wsWriter }

func (w wsTryWriter) TryWriteEvents(events []*notification.Event) (bool, error) {
	return w.conn.tryWriteEvents(events)
}

// newWSWriter returns the hub's Writer for a WebSocket.
func newWSWriter(c *websocket.Conn, conn *wsConn) hub.Writer {
	w := &wsWriter{c: c, conn: conn}
	if conn.sock.canTry() {
		return wsTryWriter{w}
	}
	return w
}

// KeepAlive sends a ping and waits for the pong on a goroutine of its own,
// so notifications to this client are not held up for a round trip; a peer
// that does not answer by the deadline is disconnected.
func (w *wsWriter) KeepAlive(d time.Time) error {
	go func() {
		pctx, cancel := context.WithDeadline(context.Background(), d)
		defer cancel()
		if err := w.c.Ping(pctx); err != nil {
			_ = w.c.CloseNow()
		}
	}()
	return nil
}

func (w *wsWriter) Close(reason hub.CloseReason) {
	switch reason {
	case hub.CloseShutdown:
		_ = w.c.Close(websocket.StatusServiceRestart, "server restarting, reconnect")
	case hub.CloseSlowConsumer:
		_ = w.c.Close(websocket.StatusTryAgainLater, "slow consumer")
	case hub.CloseWriteFailed:
		_ = w.c.CloseNow()
	case hub.CloseTokenExpired:
		_ = w.c.Close(wsStatusTokenExpired, "token expired")
	case hub.CloseTooManySessions:
		_ = w.c.Close(wsStatusTooManySessions, "too many sessions")
	default:
		_ = w.c.Close(websocket.StatusNormalClosure, "")
	}
}

// clientFrame is what clients send: {"type":"ack","id":"…"} (or "ids").
type clientFrame struct {
	Type string   `json:"type"`
	ID   string   `json:"id"`
	IDs  []string `json:"ids"`
}

// handleWS is GET /v1/ws.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.refuseOrigin(w, r)
		return
	}
	since, resume, err := parseSince(r.URL.Query().Get("since"))
	if err != nil {
		writeError(w, err)
		return
	}
	claims := userClaims(r)
	// Subscribe before the upgrade completes: once the client sees the
	// connection open, nothing published afterwards can miss it.
	release, err := s.hub.Reserve(r.Context(), claims.Subject)
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("ws subscribe failed", "user", claims.Subject, "err", err)
			err = errUnavailable
		}
		writeError(w, err)
		return
	}
	defer release()
	hj := &wsHijacker{ResponseWriter: w}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above against HERALD_ALLOWED_ORIGINS
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered the request
	}
	c.SetReadLimit(s.cfg.WSReadLimit)
	sess, err := s.hub.Attach(r.Context(), hub.AttachRequest{
		User: claims.Subject, SessionID: claims.SessionID, Transport: "ws", Expires: claims.ExpiresAt,
		Since: since, Resume: resume, Writer: newWSWriter(c, hj.conn),
	})
	if err != nil {
		if errors.Is(err, hub.ErrClosing) {
			_ = c.Close(websocket.StatusServiceRestart, "server restarting, reconnect")
		} else {
			s.log.Warn("ws attach failed", "user", claims.Subject, "err", err)
			_ = c.Close(websocket.StatusTryAgainLater, "temporarily unavailable")
		}
		return
	}
	// The connection is hijacked and outlives the handler: its reader runs
	// on a fresh goroutine with a shallow stack, and the handler's deep one
	// (net/http, router, middleware) is released.
	go s.readWS(c, sess)
}

// readWS is the connection's only reader: it answers pings, takes acks and
// notices when the peer goes away, then ends the session.
func (s *Server) readWS(c *websocket.Conn, sess *hub.Session) {
	defer s.hub.Detach(sess)
	ctx := context.Background()
	user := sess.User()
	var f clientFrame
	var one [1]string
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == -1 {
				_ = c.CloseNow()
			}
			return
		}
		f = clientFrame{}
		if typ != websocket.MessageText || json.Unmarshal(data, &f) != nil || f.Type != "ack" {
			s.hub.MalformedAck()
			continue
		}
		var ids []string
		switch {
		case f.ID != "" && len(f.ID) <= 128:
			one[0] = f.ID
			ids = one[:]
		case len(f.IDs) > 0 && len(f.IDs) <= maxAckIDs:
			ids = f.IDs
		default:
			s.hub.MalformedAck()
			continue
		}
		// A socket cannot be answered 429: acks over the user's limit are
		// dropped (and counted); the push they would have cancelled goes.
		if ok, _ := s.limits.allow(s.limits.acks, "ack", "ws", user, len(ids)); ok {
			s.hub.Ack(user, ids)
		}
	}
}
