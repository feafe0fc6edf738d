package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWSClientReadsWhatAServerSends: messages of each length encoding, in
// order, with a ping in between that gets its pong.
func TestWSClientReadsWhatAServerSends(t *testing.T) {
	sizes := []int{5, 125, 126, 70000}
	pinged := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		go func() { _, _, _ = c.Read(ctx) }() // pongs are read here
		for i, n := range sizes {
			if i == 2 {
				pinged <- c.Ping(ctx)
			}
			if err := c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", n))); err != nil {
				return
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
	}))
	defer srv.Close()
	c, err := dialWS(context.Background(), &net.Dialer{}, "ws"+strings.TrimPrefix(srv.URL, "http")+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var got []int
	_ = c.readMessages(1<<20, func(b []byte) { got = append(got, len(b)) })
	if len(got) != len(sizes) {
		t.Fatalf("messages of %v bytes, want %v", got, sizes)
	}
	for i := range sizes {
		if got[i] != sizes[i] {
			t.Fatalf("messages of %v bytes, want %v", got, sizes)
		}
	}
	if err := <-pinged; err != nil {
		t.Fatalf("ping not answered: %v", err)
	}
}

// TestWSClientWritesMessagesOfEveryLength: text messages in each length
// encoding reach a server whole, as a session's connect command must.
func TestWSClientWritesMessagesOfEveryLength(t *testing.T) {
	sizes := []int{2, 125, 126, 300, 70000}
	got := make(chan int, len(sizes))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		for {
			_, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if strings.Trim(string(msg), "y") != "" {
				t.Errorf("message of %d bytes arrived altered", len(msg))
			}
			got <- len(msg)
		}
	}))
	defer srv.Close()
	c, err := dialWS(context.Background(), &net.Dialer{}, "ws"+strings.TrimPrefix(srv.URL, "http")+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, n := range sizes {
		if err := c.writeFrame(0x1, []byte(strings.Repeat("y", n))); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m != n {
				t.Fatalf("wrote %d bytes, server read %d", n, m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message of %d bytes never arrived", n)
		}
	}
}
