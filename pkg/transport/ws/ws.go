// Package ws is the WebSocket transport: it upgrades a request over a
// hijacked connection with small buffers, writes the hub's prebuilt
// notification frames straight to the socket (several in one system call,
// without waiting when the hub's writer pool asks), leaves control frames
// to the WebSocket library, and reads the client's acks.
package ws

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

// StatusTokenExpired closes a WebSocket whose token expired; clients
// reconnect with a fresh token.
const StatusTokenExpired websocket.StatusCode = 4001

// StatusTooManySessions closes a user's oldest WebSocket on a node when a
// new one takes the user over HERALD_MAX_SESSIONS_PER_USER. Clients should
// not reconnect on it: a newer tab of theirs holds the place.
const StatusTooManySessions websocket.StatusCode = 4008

// Conn is one accepted WebSocket and the hub's Writer over it:
// notification frames go straight to the connection, the rest through
// the library.
type Conn struct {
	c   *websocket.Conn
	raw *rawConn
}

// Accept upgrades the request to a WebSocket. The caller has checked the
// request's origin. Messages from the client are limited to readLimit
// bytes. When Accept fails it has answered the request.
func Accept(w http.ResponseWriter, r *http.Request, readLimit int64) (*Conn, error) {
	hj := &hijacker{ResponseWriter: w}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the caller checked the origin
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(readLimit)
	return &Conn{c: c, raw: hj.conn}, nil
}

// Writer returns the hub's Writer for the connection: one the writer pool
// can write to without waiting when the connection is a plain socket.
func (c *Conn) Writer() transport.Writer {
	if c.raw.sock.CanTry() {
		return tryConn{c}
	}
	return c
}

// tryConn is a Conn over a plain socket.
type tryConn struct{ *Conn }

func (c tryConn) TryWriteEvents(events []*notification.Event) (bool, error) {
	return c.raw.tryWriteEvents(events)
}

// WriteEvents writes the events' frames, in order, by deadline.
func (c *Conn) WriteEvents(deadline time.Time, events []*notification.Event) error {
	return c.raw.writeEvents(deadline, events)
}

// KeepAlive sends a ping and waits for the pong on a goroutine of its own,
// so notifications to this client are not held up for a round trip; a peer
// that does not answer by the deadline is disconnected.
func (c *Conn) KeepAlive(d time.Time) error {
	go func() {
		pctx, cancel := context.WithDeadline(context.Background(), d)
		defer cancel()
		if err := c.c.Ping(pctx); err != nil {
			_ = c.c.CloseNow()
		}
	}()
	return nil
}

// Close ends the connection with the close code for reason.
func (c *Conn) Close(reason transport.CloseReason) {
	switch reason {
	case transport.CloseShutdown:
		_ = c.c.Close(websocket.StatusServiceRestart, "server restarting, reconnect")
	case transport.CloseSlowConsumer:
		_ = c.c.Close(websocket.StatusTryAgainLater, "slow consumer")
	case transport.CloseWriteFailed:
		_ = c.c.CloseNow()
	case transport.CloseTokenExpired:
		_ = c.c.Close(StatusTokenExpired, "token expired")
	case transport.CloseTooManySessions:
		_ = c.c.Close(StatusTooManySessions, "too many sessions")
	default:
		_ = c.c.Close(websocket.StatusNormalClosure, "")
	}
}

// Refuse closes a connection that could not become a session: clients
// retry on both codes, elsewhere when the node is going away.
func (c *Conn) Refuse(shuttingDown bool) {
	if shuttingDown {
		_ = c.c.Close(websocket.StatusServiceRestart, "server restarting, reconnect")
		return
	}
	_ = c.c.Close(websocket.StatusTryAgainLater, "temporarily unavailable")
}

// ReadAcks is the connection's only reader: it answers pings, hands each
// ack's ids (at most maxIDs) to ack and counts anything else with
// malformed, until the peer goes away. The ids are valid during the call.
func (c *Conn) ReadAcks(maxIDs int, ack func(ids []string), malformed func()) {
	ctx := context.Background()
	var one [1]string
	for {
		typ, data, err := c.c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == -1 {
				_ = c.c.CloseNow()
			}
			return
		}
		if typ != websocket.MessageText {
			malformed()
			continue
		}
		ids, ok := wire.ParseAck(data, &one, maxIDs)
		if !ok {
			malformed()
			continue
		}
		ack(ids)
	}
}
