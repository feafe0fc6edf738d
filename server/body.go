package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
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

// Request bodies are read into pooled chunks, so a body holds the
// memory of what has arrived, not of what it declared nor of a doubling
// buffer; a body of one chunk is used in place, a larger one copied once
// into a buffer of its exact size when complete. All bodies in flight
// together are bounded (bodiesInFlightMax): past it a request gets 503
// with Retry-After rather than the node more memory. With the read
// deadline, a client that stalls mid-body holds its share for at most
// HERALD_READ_TIMEOUT.
const (
	bodyChunk         = 16 << 10
	bodiesInFlightMax = 128 << 20
)

var (
	bodyChunks = sync.Pool{New: func() any { b := make([]byte, bodyChunk); return &b }}
	// bodiesInFlight is the memory all request bodies being read or
	// handled hold, process-wide, as memory is.
	bodiesInFlight atomic.Int64
)

// requestBody is a request's body, read whole.
type requestBody struct {
	chunks   []*[]byte // pooled; the first holds a one-chunk body
	reserved int64
	data     []byte
}

// Bytes is the body; valid until release.
func (b *requestBody) Bytes() []byte { return b.data }

// release gives the body's memory back.
func (b *requestBody) release() {
	for _, c := range b.chunks {
		bodyChunks.Put(c)
	}
	b.chunks, b.data = nil, nil
	bodiesInFlight.Add(-b.reserved)
	b.reserved = 0
}

// take reserves and returns a fresh chunk, or false over the budget.
func (b *requestBody) take() ([]byte, bool) {
	if bodiesInFlight.Add(bodyChunk) > bodiesInFlightMax {
		bodiesInFlight.Add(-bodyChunk)
		return nil, false
	}
	b.reserved += bodyChunk
	c := bodyChunks.Get().(*[]byte)
	b.chunks = append(b.chunks, c)
	return *c, true
}

// readBody reads r's body, at most limit bytes; call release on the
// result when done with its bytes. A body declared larger than limit is
// refused before any of it is read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*requestBody, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	b := &requestBody{}
	src := http.MaxBytesReader(w, r.Body, limit)
	var n int64
	var last []byte // the chunk being filled
	fill := 0
	for {
		if last == nil || fill == len(last) {
			c, ok := b.take()
			if !ok {
				b.release()
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Connection", "close")
				return nil, errBusy
			}
			last, fill = c, 0
		}
		m, err := src.Read(last[fill:])
		fill += m
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.release()
			return nil, bodyReadError(w, err)
		}
	}
	if len(b.chunks) == 1 {
		b.data = (*b.chunks[0])[:n]
		return b, nil
	}
	b.data = make([]byte, 0, n)
	for i, c := range b.chunks {
		if i == len(b.chunks)-1 {
			b.data = append(b.data, (*c)[:fill]...)
		} else {
			b.data = append(b.data, *c...)
		}
	}
	// The copy is what the body now holds; the chunks go back at once.
	for _, c := range b.chunks {
		bodyChunks.Put(c)
	}
	b.chunks = nil
	return b, nil
}
