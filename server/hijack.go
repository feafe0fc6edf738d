package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
)

// Buffer sizes for hijacked connections. net/http hands a hijacked
// connection over with its 4 KiB reader and writer; live connections are
// mostly idle and their frames small, so they get smaller ones of their own.
const (
	liveReadBuffer  = 512
	liveWriteBuffer = 1024
)

// wsHijacker wraps a ResponseWriter so that hijacking it for a WebSocket
// yields small buffers over a wsConn, which it keeps for the hub's writer.
type wsHijacker struct {
	http.ResponseWriter
	conn *wsConn
}

func (w *wsHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	c := &wsConn{Conn: conn}
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

func (w *wsHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wsConn is a WebSocket's connection, shared by two writers: the WebSocket
// library, for control frames (pings, pongs, close), and the hub, which
// writes notification frames straight to the socket — prebuilt, several
// in one system call — rather than through the library's per-message
// framing and locking. A mutex keeps frames whole: the library writes each
// control frame in one call, since its buffer holds a whole one.
type wsConn struct {
	net.Conn
	early io.Reader // bytes read before the hijack, then the conn; nil when there were none

	mu        sync.Mutex
	closeSent bool  // the library wrote a close frame: no data frame may follow
	deadline  int64 // the socket's write deadline, Unix ns
}

// wsControlTimeout bounds the library's control frame writes.
const wsControlTimeout = 10 * time.Second

// extendDeadline gives the next write a deadline no later than d and no
// earlier than halfway to it. Setting it on every write would cost a timer
// update per frame; a busy connection keeps one deadline for a while.
func (c *wsConn) extendDeadline(d time.Time) error {
	now := time.Now().UnixNano()
	end := d.UnixNano()
	if c.deadline <= end && c.deadline >= now+(end-now)/2 {
		return nil
	}
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return err
	}
	c.deadline = d.UnixNano()
	return nil
}

func (c *wsConn) Read(p []byte) (int, error) {
	if c.early != nil {
		return c.early.Read(p)
	}
	return c.Conn.Read(p)
}

// Write is the library's: whole control frames, one per call.
func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[0]&0x0f == 0x8 {
		c.closeSent = true
	}
	if err := c.extendDeadline(time.Now().Add(wsControlTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// writeEvents writes the events' frames, in order, by deadline.
func (c *wsConn) writeEvents(deadline time.Time, events []*notification.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if err := c.extendDeadline(deadline); err != nil {
		return err
	}
	var err error
	if len(events) == 1 {
		_, err = c.Conn.Write(events[0].WSWire())
	} else {
		bufs := make(net.Buffers, len(events))
		for i, ev := range events {
			bufs[i] = ev.WSWire()
		}
		_, err = bufs.WriteTo(c.Conn)
	}
	return err
}
