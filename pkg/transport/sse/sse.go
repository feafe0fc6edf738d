// Package sse is the Server-Sent Events transport. On HTTP/1.1 it hijacks
// the connection and writes the chunked stream itself: the handler
// returns, an idle stream holds no goroutine, frames go straight to the
// socket (without waiting when the hub's writer pool asks), and a peer
// watcher notices a browser that went away. Where hijacking is impossible
// (HTTP/2) the stream is held: the handler stays to keep it open and the
// same writer writes through the ResponseWriter.
package sse

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
	"github.com/heraldhq/herald/pkg/transport/peerwatch"
	"github.com/heraldhq/herald/pkg/transport/socket"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

var headers = map[string]string{
	"Content-Type":      "text/event-stream",
	"Cache-Control":     "no-cache, no-transform",
	"X-Accel-Buffering": "no", // nginx: do not buffer the stream
}

// Stream is one event stream and the hub's Writer over it. The hub writes
// a session from one goroutine at a time, so writes need no lock.
type Stream struct {
	conn net.Conn // hijacked; nil when held
	sock socket.Writer
	one  [1][]byte // the chunk of a write without waiting
	held *held     // set when the handler holds the stream

	mu     sync.Mutex
	detach func() // ends the session; set by Serve
	stop   func() // stops watching for the peer's hang-up
	done   bool
}

// held is the part of a stream whose handler stays running.
type held struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	closed chan struct{}
}

// Open starts the stream: it sends the response head and the reconnect
// hint, within writeTimeout. The headers already set on w (CORS) go with
// it. On failure the connection is closed and nothing more can be sent.
func Open(w http.ResponseWriter, r *http.Request, writeTimeout time.Duration) (*Stream, error) {
	if r.ProtoMajor == 1 {
		if conn, brw, err := http.NewResponseController(w).Hijack(); err == nil {
			return openHijacked(w, conn, brw.Writer.Flush, writeTimeout)
		}
	}
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(http.StatusOK)
	h := &held{w: w, rc: http.NewResponseController(w), closed: make(chan struct{})}
	if _, err := w.Write([]byte(wire.SSERetry)); err != nil {
		return nil, err
	}
	if err := h.rc.Flush(); err != nil {
		return nil, err
	}
	return &Stream{held: h}, nil
}

func openHijacked(w http.ResponseWriter, conn net.Conn, flush func() error, writeTimeout time.Duration) (*Stream, error) {
	_ = conn.SetDeadline(time.Time{})
	head := make([]byte, 0, 512)
	head = append(head, "HTTP/1.1 200 OK\r\n"...)
	for k, v := range headers {
		head = append(head, k+": "+v+"\r\n"...)
	}
	for k, vs := range w.Header() { // CORS headers set by middleware
		for _, v := range vs {
			head = append(head, k+": "+v+"\r\n"...)
		}
	}
	head = append(head, "Date: "+time.Now().UTC().Format(http.TimeFormat)+"\r\nTransfer-Encoding: chunked\r\n\r\n"...)
	head = append(head, strconv.FormatInt(int64(len(wire.SSERetry)), 16)+"\r\n"+wire.SSERetry+"\r\n"...)
	err := flush()
	if err == nil {
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err = conn.Write(head)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &Stream{conn: conn, sock: socket.New(conn)}, nil
}

// Writer returns the hub's Writer for the stream: one the writer pool can
// write to without waiting when it is a hijacked plain socket.
func (s *Stream) Writer() transport.Writer {
	if s.held == nil && s.sock.CanTry() {
		return tryStream{s}
	}
	return s
}

// Serve runs the attached stream until it ends, then calls detach once.
// A hijacked stream returns at once: nobody reads it, so peers (when not
// nil) notices the browser going away and the session ends then, not at
// the next heartbeat. A held stream returns when ctx ends or the hub
// closes it.
func (s *Stream) Serve(ctx context.Context, peers *peerwatch.Watcher, detach func()) {
	if s.held != nil {
		select {
		case <-ctx.Done():
		case <-s.held.closed:
		}
		detach()
		return
	}
	var stop func()
	if peers != nil {
		stop, _ = peers.Watch(s.conn, func() { go s.Close(transport.CloseNormal) })
	}
	s.mu.Lock()
	s.detach, s.stop = detach, stop
	closed := s.done
	s.mu.Unlock()
	if closed { // closed while attaching: finish what Close could not
		if stop != nil {
			stop()
		}
		detach()
	}
}

// Abort ends a stream that never became a session.
func (s *Stream) Abort() {
	if s.held == nil {
		_ = s.conn.Close()
	}
}

// chunk builds one write of the stream in a shared buffer: the events'
// records, or a keep-alive comment when there are none, framed as an
// HTTP/1.1 chunk when the stream is hijacked. Give the buffer back with
// putBuf once written.
func (s *Stream) chunk(events []*notification.Event) (*[]byte, []byte) {
	bp := bufs.Get().(*[]byte)
	b := (*bp)[:0]
	chunked := s.held == nil
	if chunked {
		b = append(b, "00000000\r\n"...) // chunk size, patched below
	}
	for _, ev := range events {
		b = append(b, wire.SSERecord(ev)...)
	}
	if len(events) == 0 {
		b = append(b, wire.SSEKeepAlive...)
	}
	start := 0
	if chunked {
		var size [8]byte
		hex := strconv.AppendUint(size[:0], uint64(len(b)-10), 16)
		start = 8 - len(hex)
		copy(b[start:], hex)
		b = append(b, "\r\n"...)
	}
	*bp = b
	return bp, b[start:]
}

func putBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		*bp = (*bp)[:0]
		bufs.Put(bp)
	}
}

// bufs are the buffers of stream writes, shared rather than kept by each
// (mostly idle) stream.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// WriteEvents writes the events' records, in order, by deadline. An empty
// batch sends what a partial write left, if anything.
func (s *Stream) WriteEvents(deadline time.Time, events []*notification.Event) error {
	if len(events) == 0 && s.held == nil {
		return s.sock.Write(deadline)
	}
	bp, b := s.chunk(events)
	defer putBuf(bp)
	return s.send(deadline, b)
}

// KeepAlive writes a comment, which keeps intermediaries from timing out
// and proves the peer is still there.
func (s *Stream) KeepAlive(deadline time.Time) error {
	bp, b := s.chunk(nil)
	defer putBuf(bp)
	return s.send(deadline, b)
}

func (s *Stream) send(deadline time.Time, b []byte) error {
	if h := s.held; h != nil {
		_ = h.rc.SetWriteDeadline(deadline)
		if _, err := h.w.Write(b); err != nil {
			return err
		}
		return h.rc.Flush()
	}
	return s.sock.Write(deadline, b)
}

// tryStream is a hijacked Stream over a plain socket.
type tryStream struct{ *Stream }

func (s tryStream) TryWriteEvents(events []*notification.Event) (bool, error) {
	bp, b := s.chunk(events)
	defer putBuf(bp)
	s.one[0] = b
	defer func() { s.one[0] = nil }()
	return s.sock.TryWrite(s.one[:])
}

// Close ends the stream and, once it is served, the session.
func (s *Stream) Close(transport.CloseReason) {
	if h := s.held; h != nil {
		s.mu.Lock()
		if !s.done {
			s.done = true
			close(h.closed)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	detach, stop := s.detach, s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	_ = s.conn.Close()
	if detach != nil {
		detach()
	}
}
