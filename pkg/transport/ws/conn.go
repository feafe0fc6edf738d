package ws

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
	"github.com/heraldhq/herald/pkg/transport/socket"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

// Buffer sizes for hijacked connections. net/http hands a hijacked
// connection over with its 4 KiB reader and writer; live connections are
// mostly idle and their frames small, so they get smaller ones of their own.
// The WebSocket library writes only control frames (at most 127 bytes from
// a server) through its writer, so a quarter KiB holds any one whole.
const (
	liveReadBuffer  = 512
	liveWriteBuffer = 256
)

// hijacker wraps a ResponseWriter so that hijacking it for a WebSocket
// yields small buffers over a rawConn, which it keeps for the hub's writer.
type hijacker struct {
	http.ResponseWriter
	conn *rawConn
}

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	c := &rawConn{Conn: conn, sock: socket.New(conn)}
	if n := brw.Reader.Buffered(); n > 0 {
		// The early bytes travel with the conn itself: the WebSocket
		// library re-points the returned reader at the conn it is given,
		// so bytes held anywhere else would be skipped.
		early, _ := brw.Reader.Peek(n)
		c.early = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	w.conn = c
	return c, bufio.NewReadWriter(bufio.NewReaderSize(c, liveReadBuffer), bufio.NewWriterSize(c, liveWriteBuffer)), nil
}

func (w *hijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// rawConn is a WebSocket's connection, shared by two writers: the WebSocket
// library, for control frames (pings, pongs, close), and the hub, which
// writes notification frames straight to the socket — prebuilt, several
// in one system call — rather than through the library's per-message
// framing and locking. A mutex keeps frames whole: the library writes each
// control frame in one call, since its buffer holds a whole one.
type rawConn struct {
	net.Conn
	early io.Reader // bytes read before the hijack, then the conn; nil when there were none

	mu        sync.Mutex
	closeSent bool // the library wrote a close frame: no data frame may follow
	sock      socket.Writer
	one       [1][]byte // the frame of a batch of one
}

// wsControlTimeout bounds the library's control frame writes.
const wsControlTimeout = 10 * time.Second

func (c *rawConn) Read(p []byte) (int, error) {
	if c.early != nil {
		return c.early.Read(p)
	}
	return c.Conn.Read(p)
}

// Write is the library's: whole control frames, one per call.
func (c *rawConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[0]&0x0f == 0x8 {
		c.closeSent = true
	}
	if err := c.sock.Write(time.Now().Add(wsControlTimeout), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// frames returns the events' prebuilt frames; a batch of one, the common
// case, needs no allocation. done must be called after the write.
func (c *rawConn) frames(events []*notification.Event) [][]byte {
	if len(events) == 1 {
		c.one[0] = wire.WSFrame(events[0])
		return c.one[:]
	}
	bufs := make([][]byte, len(events))
	for i, ev := range events {
		bufs[i] = wire.WSFrame(ev)
	}
	return bufs
}

// done lets go of the last batch's frames.
func (c *rawConn) done() { c.one[0] = nil }

// writeEvents writes the events' frames, in order, by deadline.
func (c *rawConn) writeEvents(deadline time.Time, events []*notification.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	defer c.done()
	return c.sock.Write(deadline, c.frames(events)...)
}

// tryWriteEvents writes the events' frames as far as the socket takes them
// without waiting; see transport.TryWriter.
func (c *rawConn) tryWriteEvents(events []*notification.Event) (bool, error) {
	// The library may be waiting on a full socket with a control frame
	// (a ping to a client that stopped reading): never wait behind it.
	if !c.mu.TryLock() {
		return false, transport.ErrWouldBlock
	}
	defer c.mu.Unlock()
	if c.closeSent {
		return false, net.ErrClosed
	}
	defer c.done()
	return c.sock.TryWrite(c.frames(events))
}
