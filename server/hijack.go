package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes for hijacked connections. net/http hands a hijacked
// connection over with its 4 KiB reader and writer; live connections are
// mostly idle and their frames small, so they get smaller ones of their own.
const (
	liveReadBuffer  = 512
	liveWriteBuffer = 1024
)

// smallBufferWriter wraps a ResponseWriter so that hijacking it yields
// small buffers, while bytes net/http had already read stay in front.
type smallBufferWriter struct {
	http.ResponseWriter
}

func (w smallBufferWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// The early bytes travel with the conn itself: the WebSocket
		// library re-points the returned reader at the conn it is given,
		// so bytes held anywhere else would be skipped.
		early, _ := brw.Reader.Peek(n)
		conn = &earlyConn{Conn: conn, r: io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)}
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, liveReadBuffer), bufio.NewWriterSize(conn, liveWriteBuffer)), nil
}

// earlyConn is a conn whose first reads return bytes net/http had already
// taken off the socket (a client that sent frames right behind its upgrade
// request).
type earlyConn struct {
	net.Conn
	r io.Reader
}

func (c *earlyConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (w smallBufferWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
