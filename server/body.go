package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// readDeadline gives the body of a non-streaming request
// HERALD_READ_TIMEOUT to arrive; a client stalling mid-body then gets 408
// and its connection is closed, instead of holding it and the body read
// so far for as long as it likes. The deadline is lifted once the body is
// read, so a slow handler is never cut off by it. Live streams (GET, no
// body) are not touched: their connection deadlines are the transports'.
func (s *Server) readDeadline(next http.Handler) http.Handler {
	d := s.cfg.ReadTimeout
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r)
			return
		}
		// A shallow copy: net/http must still see its own body type on the
		// request it holds, or it waits to drain an unread body before
		// answering.
		r = r.WithContext(r.Context())
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline when the body has been read.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// bodyReadError maps a failed body read to its answer: 413 over the
// limit, 408 too slow, 400 otherwise.
func bodyReadError(w http.ResponseWriter, err error) *httpError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		return errBodyTimeout
	}
	return errBadBody
}

// Request bodies are read into pooled buffers. Buffers that grew past
// pooledBodyMax are dropped rather than kept: one large body must not pin
// a megabyte per pooled buffer.
const (
	pooledBodyMax   = 64 << 10
	bodyInitialSize = 4 << 10
)

var bodyBufs = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, bodyInitialSize)) }}

// readBody reads r's body, at most limit bytes, into a pooled buffer;
// call put with it when done with its bytes. A body declared larger than
// limit is refused before any of it is read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*bytes.Buffer, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	buf := bodyBufs.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		putBody(buf)
		return nil, bodyReadError(w, err)
	}
	return buf, nil
}

func putBody(buf *bytes.Buffer) {
	if buf.Cap() <= pooledBodyMax {
		bodyBufs.Put(buf)
	}
}
