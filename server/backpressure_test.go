package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/server/config"
)

// smallWindowDialer dials with a 4 KiB receive buffer, so a client that
// stops reading fills the node's socket after a few frames.
var smallWindowDialer = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}}

// TestFullSocketDeliversEverythingInOrder: a client that stops reading
// while megabytes are sent to it makes the node's writes stop part-way;
// once it reads again every frame arrives whole, once, in order, over
// either transport.
func TestFullSocketDeliversEverythingInOrder(t *testing.T) {
	const n = 600
	body := strings.Repeat("x", 8000)
	client := &http.Client{Transport: &http.Transport{DialContext: smallWindowDialer.DialContext}}
	for _, transport := range []string{"ws", "sse"} {
		t.Run(transport, func(t *testing.T) {
			// A queue that holds all of it, in frames and in bytes: this is
			// about partial writes, not about cutting slow consumers off.
			node := startNode(t, func(c *config.Config) { c.SessionQueue, c.SessionQueueBytes = 2*n, 2*n*(len(body)+512) })
			var next func() (string, error)
			switch transport {
			case "ws":
				u := "ws" + strings.TrimPrefix(node.ts.URL, "http") + "/v1/ws?token=" + mintToken(t, "alice")
				c, _, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{HTTPClient: client})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				c.SetReadLimit(1 << 20)
				next = func() (string, error) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_, data, err := c.Read(ctx)
					if err != nil {
						return "", err
					}
					var f frame
					if err := json.Unmarshal(data, &f); err != nil {
						return "", fmt.Errorf("frame %.80q: %w", data, err)
					}
					return f.Notification.Title, nil
				}
			case "sse":
				// A stream that stalls must fail the test, not hang it.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, node.ts.URL+"/v1/sse?token="+mintToken(t, "alice"), nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				r := bufio.NewReader(resp.Body)
				next = func() (string, error) {
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return "", err
						}
						if data, ok := strings.CutPrefix(line, "data: "); ok {
							var got notification.Notification
							if err := json.Unmarshal([]byte(data), &got); err != nil {
								return "", fmt.Errorf("event %.80q: %w", data, err)
							}
							return got.Title, nil
						}
					}
				}
			}
			waitFor(t, "the session", func() bool { return node.srv.Hub().LocalSessions("alice") == 1 })
			for i := range n {
				status, resp := node.send(map[string]any{"to": []string{"alice"}, "title": fmt.Sprint(i), "body": body})
				if status != http.StatusAccepted {
					t.Fatalf("send %d: %d %s", i, status, resp)
				}
			}
			for i := range n {
				title, err := next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if title != fmt.Sprint(i) {
					t.Fatalf("frame %d is notification %s", i, title)
				}
			}
		})
	}
}
