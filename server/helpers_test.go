package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/pkg/redistest"
	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/server/config"
)

const (
	testSecret = "test-secret-0123456789abcdef"
	testAPIKey = "test-api-key"
)

// testNode is a Herald node served by httptest.
type testNode struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	cfg *config.Config

	stopOnce sync.Once
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(nil, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.DataDir = t.TempDir()
	cfg.JWTSecret = testSecret
	cfg.APIKey = testAPIKey
	return cfg
}

// nodeBackend is the back-ends a test node runs on: a name for subtests,
// and what points a node's configuration at them (nil: the data
// directory's stores).
type nodeBackend struct {
	name string
	use  func(t *testing.T, cfg *config.Config)
}

func (b nodeBackend) String() string { return b.name }

var (
	embedded      = nodeBackend{name: "Embedded"}
	redisBackends = nodeBackend{name: "RedisMode", use: func(t *testing.T, cfg *config.Config) {
		cfg.RedisURL = redistest.Start(t).URL() // a redis-server of the test's own
	}}
)

// sharedBackend is a Redis deployment that every node of a test shares.
func sharedBackend(name string, use func(*config.Config)) nodeBackend {
	return nodeBackend{name: name, use: func(_ *testing.T, cfg *config.Config) { use(cfg) }}
}

// startNode starts a node on the embedded back-ends; mutate, if not nil,
// adjusts its configuration first.
func startNode(t *testing.T, mutate func(*config.Config)) *testNode {
	t.Helper()
	return startNodeOn(t, embedded, mutate)
}

// startNodeOn starts a node on the back-ends b.
func startNodeOn(t *testing.T, b nodeBackend, mutate func(*config.Config)) *testNode {
	t.Helper()
	cfg := testConfig(t)
	if b.use != nil {
		b.use(t, cfg)
	}
	if mutate != nil {
		mutate(cfg)
	}
	return startNodeWith(t, cfg)
}

func startNodeWith(t *testing.T, cfg *config.Config) *testNode {
	t.Helper()
	srv, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	n := &testNode{t: t, srv: srv, ts: ts, cfg: cfg}
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.srv.Shutdown(ctx)
		n.ts.CloseClientConnections()
		n.ts.Close()
	})
}

func mintToken(t *testing.T, user string) string {
	t.Helper()
	raw, err := token.Mint([]byte(testSecret), token.Claims{Subject: user, SessionID: "s-" + user, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// send posts to the server API and returns the status and body.
func (n *testNode) send(body any) (int, []byte) {
	n.t.Helper()
	return n.do(http.MethodPost, "/v1/notifications", testAPIKey, body)
}

func (n *testNode) do(method, path, bearer string, body any) (int, []byte) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.ts.URL+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mustSend sends one notification and returns the response.
func (n *testNode) mustSend(to []string, title string) sendResponse {
	n.t.Helper()
	status, body := n.send(map[string]any{"to": to, "title": title, "body": "b " + title})
	if status != http.StatusAccepted {
		n.t.Fatalf("send: %d %s", status, body)
	}
	var resp sendResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		n.t.Fatal(err)
	}
	return resp
}

// frame is a decoded server frame, from either transport.
type frame struct {
	Type         string         `json:"type"`
	Cursor       string         `json:"cursor"`
	ID           string         `json:"id"`
	IDs          []string       `json:"ids"`
	Tag          string         `json:"tag"`
	State        string         `json:"state"`
	Total        int            `json:"total"`
	Tags         map[string]int `json:"tags"`
	AsOf         string         `json:"as_of"`
	Notification struct {
		ID     string `json:"id"`
		Cursor string `json:"cursor"`
		User   string `json:"user"`
		Title  string `json:"title"`
		Body   string `json:"body"`
	} `json:"notification"`
}

// wsClient is a test WebSocket client.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func (n *testNode) dialWS(user, query string, header http.Header) (*wsClient, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(n.ts.URL, "http") + "/v1/ws?token=" + mintToken(n.t, user)
	if query != "" {
		u += "&" + query
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(1 << 20)
	n.t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: n.t, c: c}, resp, nil
}

func (n *testNode) mustDialWS(user, query string) *wsClient {
	n.t.Helper()
	c, _, err := n.dialWS(user, query, nil)
	if err != nil {
		n.t.Fatalf("dial ws: %v", err)
	}
	return c
}

func (w *wsClient) next(timeout time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, data, err := w.c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		w.t.Fatalf("bad frame %q: %v", data, err)
	}
	return f, nil
}

func (w *wsClient) mustNext() frame {
	w.t.Helper()
	f, err := w.next(10 * time.Second)
	if err != nil {
		w.t.Fatalf("ws read: %v", err)
	}
	return f
}

// sseClient is a test EventSource.
type sseClient struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

type sseEvent struct {
	ID, Event, Data string
}

func (n *testNode) dialSSE(user string, header http.Header) (*sseClient, error) {
	req, _ := http.NewRequest(http.MethodGet, n.ts.URL+"/v1/sse?token="+mintToken(n.t, user), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	n.t.Cleanup(func() { resp.Body.Close() })
	return &sseClient{t: n.t, resp: resp, r: bufio.NewReader(resp.Body)}, nil
}

func (n *testNode) mustDialSSE(user string, header http.Header) *sseClient {
	n.t.Helper()
	c, err := n.dialSSE(user, header)
	if err != nil {
		n.t.Fatal(err)
	}
	if c.resp.StatusCode != http.StatusOK {
		n.t.Fatalf("sse status %d", c.resp.StatusCode)
	}
	return c
}

// next returns the next event, skipping comments and the retry hint.
func (c *sseClient) next(timeout time.Duration) (sseEvent, error) {
	type result struct {
		ev  sseEvent
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var ev sseEvent
		for {
			line, err := c.r.ReadString('\n')
			if err != nil {
				ch <- result{err: err}
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.Event != "" || ev.Data != "" {
					ch <- result{ev: ev}
					return
				}
			case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	select {
	case r := <-ch:
		return r.ev, r.err
	case <-time.After(timeout):
		c.resp.Body.Close()
		return sseEvent{}, context.DeadlineExceeded
	}
}

func (c *sseClient) mustNext() sseEvent {
	c.t.Helper()
	ev, err := c.next(10 * time.Second)
	if err != nil {
		c.t.Fatalf("sse read: %v", err)
	}
	return ev
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type configT = config.Config

func closeStatus(err error) int { return int(websocket.CloseStatus(err)) }
