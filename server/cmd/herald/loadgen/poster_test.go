package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestPosterSpeaksHTTP: requests reach a net/http server whole, and every
// way an answer can end (length, chunks, no body, close) is read right,
// keeping the connection when it may be kept.
func TestPosterSpeaksHTTP(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("X-Test") != "yes" || r.Host == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusAccepted)
			w.Write(body)
		case "/chunked":
			w.WriteHeader(http.StatusOK)
			w.Write(body)
			w.(http.Flusher).Flush()
			w.Write([]byte("more"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("bye"))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p, err := newPoster(srv.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hdr := []byte("X-Test: yes\r\n")
	for _, c := range []struct {
		path string
		want int
	}{
		{"/length", 202}, {"/chunked", 200}, {"/empty", 204}, {"/length", 202}, {"/chunked", 200},
	} {
		got, err := p.post(ctx, c.path, hdr, []byte(strings.Repeat("x", 5000)))
		if err != nil || got != c.want {
			t.Fatalf("%s: status %d, %v; want %d", c.path, got, err, c.want)
		}
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections for answers that all allow keep-alive, want 1", conns.Load())
	}
	if got, err := p.post(ctx, "/close", hdr, nil); err != nil || got != 503 {
		t.Fatalf("/close: %d, %v", got, err)
	}
	if got, err := p.post(ctx, "/length", hdr, nil); err != nil || got != 202 {
		t.Fatalf("after close: %d, %v", got, err)
	}
	if conns.Load() != 2 {
		t.Fatalf("%d connections, want a new one after Connection: close", conns.Load())
	}
	// The node drops idle connections; a request on one is sent again on a
	// new connection.
	srv.CloseClientConnections()
	if got, err := p.post(ctx, "/length", hdr, []byte("again")); err != nil || got != 202 {
		t.Fatalf("after the node closed the idle connection: %d, %v", got, err)
	}
}
