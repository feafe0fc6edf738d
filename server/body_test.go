package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/server/config"
)

// serveListening runs a node on its own listener through Serve, as the
// binary does (httptest's server would skip Serve's listener and limits).
func serveListening(t *testing.T, mutate func(*config.Config)) (*Server, string) {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(cfg)
	}
	srv, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return srv, ln.Addr().String()
}

// TestStalledBodyIsCutOffWith408: a client that declares a body and
// stops sending it gets 408 once HERALD_READ_TIMEOUT passes, and its
// connection is closed; before, it could hold both forever.
func TestStalledBodyIsCutOffWith408(t *testing.T) {
	_, addr := serveListening(t, func(c *config.Config) {
		c.ReadTimeout = 300 * time.Millisecond
		c.TalkJSSecret = "talkjs-secret"
	})
	for _, tc := range []struct{ path, auth string }{
		{"/webhooks/talkjs", ""},
		{"/v1/notifications", "Authorization: Bearer " + testAPIKey + "\r\n"},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "POST "+tc.path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+tc.auth+
				"Content-Length: 1048576\r\n\r\n{\"type\":")
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer to a stalled body: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
			}
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatal("connection left open after the 408")
			}
		})
	}
}

// TestBodyDeadlineLiftedOnceRead: a request whose body arrived in time is
// served however long its handler takes, and keep-alive goes on.
func TestBodyDeadlineLiftedOnceRead(t *testing.T) {
	_, addr := serveListening(t, func(c *config.Config) { c.ReadTimeout = 200 * time.Millisecond })
	client := &http.Client{}
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/notifications", strings.NewReader(`{"to":["alice"],"title":"x"}`))
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("send %d: %d", i, resp.StatusCode)
		}
		time.Sleep(300 * time.Millisecond) // past the deadline, on the same connection
	}
}

func TestDeclaredOversizeBodyRefusedUnread(t *testing.T) {
	_, addr := serveListening(t, func(c *config.Config) { c.TalkJSSecret = "talkjs-secret" })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST /webhooks/talkjs HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB declared: %d, want 413 before any of it is sent", resp.StatusCode)
	}
}

func TestReadBodyWholeAtEverySize(t *testing.T) {
	const limit = 4*bodyChunk + 10
	for _, size := range []int{0, 1, bodyChunk - 1, bodyChunk, bodyChunk + 1, 3*bodyChunk + 5, limit} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(i*7 + size)
		}
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(want))
		r.ContentLength = -1 // as if chunked: the size is learnt by reading
		b, err := readBody(httptest.NewRecorder(), r, limit)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Fatalf("%d bytes read back as %d different ones", size, len(b.Bytes()))
		}
		b.release()
	}
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(make([]byte, limit+1)))
	r.ContentLength = -1
	if _, err := readBody(httptest.NewRecorder(), r, limit); !errors.Is(err, errTooLarge) {
		t.Fatalf("a body over the limit: %v, want errTooLarge", err)
	}
	if n := bodiesInFlight.Load(); n != 0 {
		t.Fatalf("%d bytes still reserved after every body was released", n)
	}
}

// TestBodiesInFlightAreBounded: past the budget a request is refused with
// 503 and Retry-After instead of growing the node's memory.
func TestBodiesInFlightAreBounded(t *testing.T) {
	bodiesInFlight.Add(bodiesInFlightMax - bodyChunk)
	defer bodiesInFlight.Add(-(bodiesInFlightMax - bodyChunk))
	ok := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	b, err := readBody(httptest.NewRecorder(), ok, 1<<20)
	if err != nil {
		t.Fatalf("a small body within the budget: %v", err)
	}
	rec := httptest.NewRecorder()
	over := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	if _, err := readBody(rec, over, 1<<20); !errors.Is(err, errBusy) || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a body over the budget: %v (Retry-After %q), want 503 busy with Retry-After", err, rec.Header().Get("Retry-After"))
	}
	b.release()
	again, err := readBody(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")), 1<<20)
	if err != nil {
		t.Fatalf("after a release the budget is there again: %v", err)
	}
	again.release()
}
