package server

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

// sseRetry is the reconnect delay hint sent to EventSource clients.
const sseRetry = "retry: 2000\n\n"

var sseHeaders = map[string]string{
	"Content-Type":      "text/event-stream",
	"Cache-Control":     "no-cache, no-transform",
	"X-Accel-Buffering": "no", // nginx: do not buffer the stream
}

// handleSSE is GET /v1/sse. Resume with Last-Event-ID or ?since=.
//
// On HTTP/1.1 the stream is hijacked: the handler returns, and an idle
// stream holds no goroutine at all. The hub's writer writes chunks straight
// to the connection when there is something to send, and heartbeats reveal
// peers that went away. Where hijacking is impossible (HTTP/2), the handler
// stays to hold the stream open.
func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.refuseOrigin(w, r)
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
	req := hub.AttachRequest{User: userClaims(r).Subject, SessionID: userClaims(r).SessionID,
		Transport: "sse", Since: since, Resume: resume, Expires: userClaims(r).ExpiresAt}
	// Subscribe before the response head goes out: once the client sees the
	// stream open, nothing published afterwards can miss it.
	release, err := s.hub.Reserve(r.Context(), req.User)
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("sse subscribe failed", "user", req.User, "err", err)
			err = errUnavailable
		}
		writeError(w, err)
		return
	}
	defer release()
	if r.ProtoMajor == 1 {
		s.serveHijackedSSE(w, r, req)
		return
	}
	s.serveHeldSSE(w, r, req)
}

// sseConn is the hub's Writer over a hijacked HTTP/1.1 connection, writing
// chunked transfer encoding itself.
type sseConn struct {
	conn net.Conn
	hub  *hub.Hub
	sock socketWriter
	one  [1][]byte // the chunk of a write without waiting

	mu   sync.Mutex
	sess *hub.Session // set once attached
	stop func()       // stops watching for the peer's hang-up
	done bool
}

// sseChunk builds one chunk of the stream in a shared buffer: the events'
// frames, or a keep-alive comment when there are none. Give the buffer
// back with putSSEChunk once written.
func sseChunk(events []*notification.Event) (*[]byte, []byte) {
	bp := sseBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, "00000000\r\n"...) // chunk size, patched below
	for _, ev := range events {
		b = append(b, wire.SSERecord(ev)...)
	}
	if len(events) == 0 {
		b = append(b, ": keep-alive\n\n"...)
	}
	var size [8]byte
	hex := strconv.AppendUint(size[:0], uint64(len(b)-10), 16)
	start := 8 - len(hex)
	copy(b[start:], hex)
	b = append(b, "\r\n"...)
	*bp = b
	return bp, b[start:]
}

func putSSEChunk(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		*bp = (*bp)[:0]
		sseBufs.Put(bp)
	}
}

// sseBufs are the chunk buffers of stream writes, shared rather than kept
// by each (mostly idle) connection.
var sseBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// The hub writes a session from one goroutine at a time, so the stream's
// writes need no lock of their own.

func (c *sseConn) WriteEvents(deadline time.Time, events []*notification.Event) error {
	if len(events) == 0 {
		return c.sock.write(deadline) // what a partial write left, if anything
	}
	bp, b := sseChunk(events)
	defer putSSEChunk(bp)
	return c.sock.write(deadline, b)
}

func (c *sseConn) KeepAlive(deadline time.Time) error {
	bp, b := sseChunk(nil)
	defer putSSEChunk(bp)
	return c.sock.write(deadline, b)
}

// sseTryConn is an sseConn over a plain socket, which the hub's writer
// pool can write to without waiting.
type sseTryConn struct{ *sseConn }

func (c sseTryConn) TryWriteEvents(events []*notification.Event) (bool, error) {
	bp, b := sseChunk(events)
	defer putSSEChunk(bp)
	c.one[0] = b
	defer func() { c.one[0] = nil }()
	return c.sock.tryWrite(c.one[:])
}

// Close ends the stream and the session.
func (c *sseConn) Close(hub.CloseReason) {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	c.done = true
	sess, stop := c.sess, c.stop
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	_ = c.conn.Close()
	if sess != nil {
		c.hub.Detach(sess)
	}
}

func (s *Server) serveHijackedSSE(w http.ResponseWriter, r *http.Request, req hub.AttachRequest) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.serveHeldSSE(w, r, req)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	head := make([]byte, 0, 512)
	head = append(head, "HTTP/1.1 200 OK\r\n"...)
	for k, v := range sseHeaders {
		head = append(head, k+": "+v+"\r\n"...)
	}
	for k, vs := range w.Header() { // CORS headers set by middleware
		for _, v := range vs {
			head = append(head, k+": "+v+"\r\n"...)
		}
	}
	head = append(head, "Date: "+time.Now().UTC().Format(http.TimeFormat)+"\r\nTransfer-Encoding: chunked\r\n\r\n"...)
	head = append(head, strconv.FormatInt(int64(len(sseRetry)), 16)+"\r\n"+sseRetry+"\r\n"...)
	if err := brw.Writer.Flush(); err == nil {
		_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		_, err = conn.Write(head)
	}
	if err != nil {
		conn.Close()
		return
	}
	sc := &sseConn{conn: conn, hub: s.hub, sock: newSocketWriter(conn)}
	req.Writer = sc
	if sc.sock.canTry() {
		req.Writer = sseTryConn{sc}
	}
	sess, err := s.hub.Attach(r.Context(), req)
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("sse attach failed", "user", req.User, "err", err)
		}
		conn.Close()
		return
	}
	// Nobody reads a hijacked stream, so a watcher notices when the
	// browser goes away; the session ends then, not at the next heartbeat.
	var stop func()
	if s.peers != nil {
		stop, _ = s.peers.Watch(conn, func() { go sc.Close(hub.CloseNormal) })
	}
	sc.mu.Lock()
	sc.sess, sc.stop = sess, stop
	closed := sc.done
	sc.mu.Unlock()
	if closed { // closed while attaching: finish what Close could not
		if stop != nil {
			stop()
		}
		s.hub.Detach(sess)
	}
}

// heldSSE is the hub's Writer over a stream whose handler stays running.
type heldSSE struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	once sync.Once
	done chan struct{}
}

func (w *heldSSE) deadline(d time.Time) { _ = w.rc.SetWriteDeadline(d) }

func (w *heldSSE) WriteEvents(deadline time.Time, events []*notification.Event) error {
	w.deadline(deadline)
	for _, ev := range events {
		if _, err := w.w.Write(wire.SSERecord(ev)); err != nil {
			return err
		}
	}
	return w.rc.Flush()
}

func (w *heldSSE) KeepAlive(deadline time.Time) error {
	w.deadline(deadline)
	if _, err := w.w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return w.rc.Flush()
}

func (w *heldSSE) Close(hub.CloseReason) { w.once.Do(func() { close(w.done) }) }

func (s *Server) serveHeldSSE(w http.ResponseWriter, r *http.Request, req hub.AttachRequest) {
	for k, v := range sseHeaders {
		w.Header().Set(k, v)
	}
	w.WriteHeader(http.StatusOK)
	hw := &heldSSE{w: w, rc: http.NewResponseController(w), done: make(chan struct{})}
	if _, err := w.Write([]byte(sseRetry)); err != nil || hw.rc.Flush() != nil {
		return
	}
	req.Writer = hw
	sess, err := s.hub.Attach(r.Context(), req)
	if err != nil {
		if !errors.Is(err, hub.ErrClosing) {
			s.log.Warn("sse attach failed", "user", req.User, "err", err)
		}
		return
	}
	defer s.hub.Detach(sess)
	select {
	case <-r.Context().Done():
	case <-hw.done:
	}
}
