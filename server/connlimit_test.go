package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/heraldhq/herald/server/config"
)

// rawGet opens a connection, sends one GET with the extra header lines
// and returns the connection, still open, with the answer's status.
func rawGet(t *testing.T, addr, path, extra string) (net.Conn, int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n"); err != nil {
		return c, -1
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, -1
	}
	return c, resp.StatusCode
}

func TestConnectionsPerIPAreCapped(t *testing.T) {
	_, addr := serveListening(t, func(c *config.Config) { c.MaxConnsPerIP = 3 })
	sse := "/v1/sse?token=" + mintToken(t, "alice")
	var open []net.Conn
	for i := range 3 {
		c, status := rawGet(t, addr, sse, "")
		if status != http.StatusOK {
			t.Fatalf("stream %d: %d", i, status)
		}
		open = append(open, c)
	}
	if _, status := rawGet(t, addr, "/healthz", ""); status != http.StatusTooManyRequests {
		t.Fatalf("connection over the cap: %d, want 429", status)
	}
	open[0].Close()
	waitFor(t, "the closed stream's slot back", func() bool {
		c, status := rawGet(t, addr, "/healthz", "")
		c.Close()
		return status == http.StatusOK
	})
}

// TestForwardedClientsCountedBehindTrustedProxies: the proxy's own
// address is not capped (it carries everyone), each forwarded client is,
// live streams included, and only the address the proxy itself appended
// is believed.
func TestForwardedClientsCountedBehindTrustedProxies(t *testing.T) {
	_, addr := serveListening(t, func(c *config.Config) {
		c.MaxConnsPerIP = 2
		c.TrustedProxies = []string{"127.0.0.0/8"}
	})
	sse := "/v1/sse?token=" + mintToken(t, "alice")
	xff := func(v string) string { return "X-Forwarded-For: " + v + "\r\n" }
	var streams []net.Conn
	for i, hop := range []string{"203.0.113.7", "198.51.100.1, 203.0.113.7"} {
		c, status := rawGet(t, addr, sse, xff(hop))
		if status != http.StatusOK {
			t.Fatalf("stream %d through the proxy: %d", i, status)
		}
		streams = append(streams, c)
	}
	if _, status := rawGet(t, addr, "/healthz", xff("10.9.9.9, 203.0.113.7")); status != http.StatusTooManyRequests {
		t.Fatalf("third request of a client with two streams open: %d, want 429", status)
	}
	for i := range 3 {
		if _, status := rawGet(t, addr, "/healthz", xff("203.0.113.8")); status != http.StatusOK {
			t.Fatalf("another client's request %d: %d, want 200 (the proxy itself is not capped)", i, status)
		}
	}
	streams[0].Close()
	waitFor(t, "the closed stream's slot back", func() bool {
		c, status := rawGet(t, addr, "/healthz", xff("203.0.113.7"))
		c.Close()
		return status == http.StatusOK
	})
}

func TestClientAddrBelievesOnlyTrustedHops(t *testing.T) {
	l, err := newConnLimiter(10, []string{"10.0.0.0/8", "192.0.2.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote, xff string
		want        string
		forwarded   bool
	}{
		{"203.0.113.5:1000", "1.2.3.4", "203.0.113.5", false},            // untrusted peer: header ignored
		{"10.1.1.1:1000", "1.2.3.4", "1.2.3.4", true},                    // trusted proxy
		{"10.1.1.1:1000", "6.6.6.6, 1.2.3.4, 10.2.2.2", "1.2.3.4", true}, // two proxies; the client's own claim ignored
		{"192.0.2.1:1000", "", "192.0.2.1", false},                       // trusted, nothing forwarded
		{"10.1.1.1:1000", "1.2.3.4, junk", "10.1.1.1", false},            // malformed hop
		{"[::ffff:10.1.1.1]:1000", "::ffff:1.2.3.4", "1.2.3.4", true},    // mapped addresses
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		got, fwd := l.clientAddr(r)
		if got.String() != tc.want || fwd != tc.forwarded {
			t.Errorf("remote %s, X-Forwarded-For %q: %s forwarded=%v, want %s forwarded=%v", tc.remote, tc.xff, got, fwd, tc.want, tc.forwarded)
		}
	}
}
