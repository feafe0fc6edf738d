// Package transport is the family of Herald's live transports: the
// WebSocket (ws) and Server-Sent Events (sse) session writers over
// hijacked connections, the socket writer they share (socket), the wire
// encodings of what clients receive (wire) and the watcher that notices
// idle peers hanging up (peerwatch). This package holds what they and the
// hub have in common: why a session ends, and how a write that cannot
// start says so.
package transport

import (
	"errors"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
)

// CloseReason says why a session ended. The hub ends sessions with the
// reasons from CloseShutdown to CloseTooManySessions, and transports map
// them to a WebSocket close code or simply end the stream; CloseClient is
// only counted, for a session whose transport ended first.
type CloseReason uint8

const (
	CloseNormal          CloseReason = iota
	CloseShutdown                    // node going away: reconnect elsewhere (WS 1012)
	CloseSlowConsumer                // the client did not keep up (WS 1013)
	CloseWriteFailed                 // a write failed or timed out
	CloseTokenExpired                // the token the session was opened with expired
	CloseTooManySessions             // the user opened more than MaxSessionsPerUser here (WS 4008)
	CloseClient                      // the client or the network ended the connection

	// NumCloseReasons counts the reasons, for tables indexed by them.
	NumCloseReasons = iota
)

func (r CloseReason) String() string {
	switch r {
	case CloseShutdown:
		return "shutdown"
	case CloseSlowConsumer:
		return "slow_consumer"
	case CloseWriteFailed:
		return "write_failed"
	case CloseTokenExpired:
		return "token_expired"
	case CloseTooManySessions:
		return "too_many_sessions"
	case CloseClient:
		return "client_close"
	default:
		return "normal"
	}
}

// ErrWouldBlock is what a writer that can write without waiting returns
// when it could not even start a write (the connection is busy with one
// of its own): it wrote and kept nothing.
var ErrWouldBlock = errors.New("transport: write would block")

// Writer is a session's transport, as the hub uses it. The hub calls
// WriteEvents and KeepAlive from at most one goroutine at a time, and only
// while something is to be sent: an idle session has no goroutine of the
// hub's.
type Writer interface {
	// WriteEvents writes frames for the events (notification, retract or
	// reset), in order, as one batch where the transport allows.
	// The write must be done by deadline.
	WriteEvents(deadline time.Time, events []*notification.Event) error
	// KeepAlive proves the peer is alive (WS ping) or keeps intermediaries
	// from timing out (SSE comment).
	KeepAlive(deadline time.Time) error
	// Close ends the transport; its owner then detaches the session from
	// the hub.
	Close(reason CloseReason)
}

// TryWriter is implemented by transports that can write without waiting.
// The hub then writes their frames from a few pool goroutines instead of a
// goroutine per session and batch: a fan-out to ten thousand sessions
// starts no goroutine at all while their sockets have room.
type TryWriter interface {
	// TryWriteEvents writes the events' frames, in order, as far as the
	// socket takes them now, and reports whether it took them all. When it
	// did not (and err is nil), the transport keeps the rest and writes it
	// first on the next WriteEvents, which the hub then calls without
	// delay from a goroutine of the session's own.
	// It returns ErrWouldBlock when it wrote and kept nothing (the
	// connection is busy with a write of its own); the hub then hands the
	// batch to WriteEvents.
	TryWriteEvents(events []*notification.Event) (all bool, err error)
}
