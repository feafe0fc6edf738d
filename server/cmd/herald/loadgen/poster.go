package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// poster is the load tool's HTTP/1.1 client for its API calls and
// webhooks: keep-alive connections, each request written and its answer
// read on the caller's goroutine. net/http's client hands every request
// to a writer and a reader goroutine of the connection; on a machine the
// tool shares with the node, those hand-offs cost as much CPU as a good
// part of what the node spends on the request, so the tool measured
// itself as much as the node.
type poster struct {
	host    string // for the Host header and dialing
	sources int
	next    atomic.Int64
	idle    chan *rawConn
}

func newPoster(base string, sources int) (*poster, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("loadgen: url: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("loadgen: url %s: only http is supported", base)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	return &poster{host: host, sources: max(sources, 1), idle: make(chan *rawConn, 1024)}, nil
}

// rawConn is one keep-alive connection.
type rawConn struct {
	c    net.Conn
	br   *bufio.Reader
	wbuf []byte
}

// post sends a POST of body to path with the given header lines (each
// "Name: value\r\n") and returns the answer's status; its body is read
// and dropped. A request on a kept-alive connection the node had already
// closed is sent once more on a new one, as net/http does.
func (p *poster) post(ctx context.Context, path string, header, body []byte) (int, error) {
	var rc *rawConn
	select {
	case rc = <-p.idle:
	default:
	}
	reused := rc != nil
	for {
		if rc == nil {
			var err error
			if rc, err = p.dial(ctx); err != nil {
				return 0, err
			}
		}
		status, keep, sent, err := rc.roundTrip(ctx, p.host, path, header, body)
		if err != nil {
			rc.c.Close()
			if reused && !sent {
				rc, reused = nil, false
				continue
			}
			return 0, err
		}
		if keep {
			select {
			case p.idle <- rc:
			default:
				rc.c.Close()
			}
		} else {
			rc.c.Close()
		}
		return status, nil
	}
}

func (p *poster) dial(ctx context.Context) (*rawConn, error) {
	c, err := dialerFor(int(p.next.Add(1)), p.sources).DialContext(ctx, "tcp", p.host)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

var errMalformedAnswer = errors.New("malformed HTTP answer")

// roundTrip writes one request and reads its answer. sent reports whether
// any byte of an answer arrived (else the request may not have been seen).
func (rc *rawConn) roundTrip(ctx context.Context, host, path string, header, body []byte) (status int, keep, sent bool, err error) {
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := rc.c.SetDeadline(deadline); err != nil {
		return 0, false, false, err
	}
	w := append(rc.wbuf[:0], "POST "...)
	w = append(w, path...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, host...)
	w = append(w, "\r\nContent-Length: "...)
	w = strconv.AppendInt(w, int64(len(body)), 10)
	w = append(w, "\r\n"...)
	w = append(w, header...)
	w = append(w, "\r\n"...)
	w = append(w, body...)
	rc.wbuf = w
	if _, err := rc.c.Write(w); err != nil {
		return 0, false, false, err
	}

	line, err := rc.br.ReadSlice('\n')
	if err != nil {
		return 0, false, len(line) > 0, err
	}
	// HTTP/1.1 202 Accepted
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, true, errMalformedAnswer
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, true, errMalformedAnswer
	}
	keep = line[7] == '1'
	length, chunked := int64(-1), false
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			return 0, false, true, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, true, errMalformedAnswer
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, hContentLength):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, false, true, errMalformedAnswer
			}
		case bytes.EqualFold(name, hTransferEncoding):
			chunked = bytes.Contains(bytes.ToLower(value), vChunked)
		case bytes.EqualFold(name, hConnection):
			keep = keep && !bytes.EqualFold(value, vClose)
		}
	}
	switch {
	case status < 200 || status == http.StatusNoContent || status == http.StatusNotModified:
	case chunked:
		err = rc.discardChunks()
	case length >= 0:
		_, err = rc.br.Discard(int(length))
	default:
		_, err = io.Copy(io.Discard, rc.br) // the body runs to the close
		keep = false
	}
	if err != nil {
		return 0, false, true, err
	}
	return status, keep, true, nil
}

func (rc *rawConn) discardChunks() error {
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return errMalformedAnswer
		}
		if n == 0 {
			for { // trailer, up to the empty line
				line, err := rc.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimSpace(line)) == 0 {
					return nil
				}
			}
		}
		if _, err := rc.br.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}

var (
	hContentLength    = []byte("content-length")
	hTransferEncoding = []byte("transfer-encoding")
	hConnection       = []byte("connection")
	vClose            = []byte("close")
	vChunked          = []byte("chunked")
)

// headerLines renders h as request header lines.
func headerLines(h http.Header) []byte {
	var b bytes.Buffer
	for name, values := range h {
		for _, v := range values {
			b.WriteString(name)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}
