package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/pkg/token"
)

// These tests run the real binary as separate processes, the way operators
// and the cluster script do.

var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-bin")
	if err != nil {
		panic(err)
	}
	heraldBin = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", heraldBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	procSecret = "process-test-secret-0123456789"
	procAPIKey = "process-test-api-key"
)

// node is a running herald process.
type node struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	out  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess runs "herald serve" with env and waits until /readyz answers.
func startProcess(t *testing.T, env ...string) *node {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(heraldBin, "serve")
	cmd.Env = append(os.Environ(), "HERALD_ADDR=127.0.0.1:"+fmt.Sprint(port), "HERALD_LOG_LEVEL=debug")
	cmd.Env = append(cmd.Env, env...)
	n := &node{t: t, cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port), out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("herald %s output:\n%s", n.base, n.out.String())
		}
	})
	waitUntil(t, "node ready", func() bool {
		resp, err := http.Get(n.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

func (n *node) kill() {
	if n.cmd.ProcessState == nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func userToken(t *testing.T, user string) string {
	t.Helper()
	raw, err := token.Mint([]byte(procSecret), token.Claims{Subject: user, SessionID: "sid-" + user, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func sendVia(t *testing.T, base, apiKey string, to []string, title string) {
	t.Helper()
	if err := trySend(base, apiKey, to, title); err != nil {
		t.Fatal(err)
	}
}

// trySend posts a notification; safe to call from any goroutine.
func trySend(base, apiKey string, to []string, title string) error {
	b, _ := json.Marshal(map[string]any{"to": to, "title": title})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/notifications", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("send: %d %s", resp.StatusCode, body)
	}
	return nil
}

func presence(t *testing.T, base, user string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/users/"+user+"/presence", nil)
	req.Header.Set("Authorization", "Bearer "+procAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("presence: %v", err)
	}
	defer resp.Body.Close()
	var p struct{ Sessions int }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return p.Sessions
}

// titles reads notification titles from a WebSocket.
func wsTitles(t *testing.T, base, user string) (<-chan string, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/ws?token="+userToken(t, user), nil)
	if err != nil {
		t.Fatalf("dial ws %s: %v", base, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				ch <- fmt.Sprint("close:", int(websocket.CloseStatus(err)))
				return
			}
			var f struct {
				Type         string
				Notification struct{ Title string }
			}
			_ = json.Unmarshal(data, &f)
			ch <- f.Type + ":" + f.Notification.Title
		}
	}()
	return ch, c
}

func sseTitles(t *testing.T, base, user string) <-chan string {
	t.Helper()
	resp, err := http.Get(base + "/v1/sse?token=" + userToken(t, user))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sse %s: %v", base, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "data: "):
				var n struct{ Title string }
				_ = json.Unmarshal([]byte(line[6:]), &n)
				ch <- event + ":" + n.Title
			}
		}
	}()
	return ch
}

func expect(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got, ok := <-ch:
		if !ok {
			t.Fatalf("stream ended, want %q", want)
		}
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %q", want)
	}
}

func TestZeroConfigServeTokenSend(t *testing.T) {
	dir := t.TempDir()
	n := startProcess(t, "HERALD_DATA_DIR="+dir)
	waitUntil(t, "first-start banner", func() bool { return strings.Contains(n.out.String(), "API key:") })
	secrets, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sec struct {
		APIKey string `json:"api_key"`
	}
	_ = json.Unmarshal(secrets, &sec)
	if !strings.Contains(n.out.String(), sec.APIKey) {
		t.Fatal("API key not printed on first start")
	}
	tok, err := exec.Command(heraldBin, "token", "--user", "alice", "--data-dir", dir).Output()
	if err != nil {
		t.Fatalf("herald token: %v", err)
	}
	resp, err := http.Get(n.base + "/v1/sse?token=" + strings.TrimSpace(string(tok)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sse with minted token: %v %v", err, resp)
	}
	defer resp.Body.Close()
	out, err := exec.Command(heraldBin, "send", "--server", n.base, "--data-dir", dir, "--to", "alice", "--title", "Hello", "--body", "tour").CombinedOutput()
	if err != nil {
		t.Fatalf("herald send: %v %s", err, out)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"title":"Hello"`) {
			return
		}
	}
	t.Fatal("notification not received over SSE")
}

func TestSIGTERMClosesWebSocketsWith1012(t *testing.T) {
	n := startProcess(t, "HERALD_DATA_DIR="+t.TempDir(), "HERALD_JWT_SECRET="+procSecret, "HERALD_API_KEY="+procAPIKey)
	ch, _ := wsTitles(t, n.base, "alice")
	waitUntil(t, "session", func() bool { return presence(t, n.base, "alice") == 1 })
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	expect(t, ch, "close:1012")
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, n.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
}

// TestBenchDrivesANode runs the shipped load tool against a node, small.
func TestBenchDrivesANode(t *testing.T) {
	dir := t.TempDir()
	n := startProcess(t, "HERALD_DATA_DIR="+dir, "HERALD_JWT_SECRET="+procSecret, "HERALD_API_KEY="+procAPIKey)
	for _, args := range [][]string{
		{"idle", "--transport", "sse", "--sessions", "20", "--pid", fmt.Sprint(n.cmd.Process.Pid)},
		{"unicast", "--transport", "ws", "--sessions", "20", "--messages", "200", "--rate", "500"},
		{"unicast", "--transport", "sse", "--sessions", "20", "--messages", "200"},
		{"fanout", "--transport", "ws", "--sessions", "20", "--rounds", "3"},
	} {
		cmd := exec.Command(heraldBin, append(append([]string{"bench"}, args...),
			"--server", n.base, "--api-key", procAPIKey, "--jwt-secret", procSecret, "--timeout", "60s")...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bench %v: %v", args, err)
		}
		var res struct {
			Scenario   string
			Sent       int
			Delivered  int
			Sessions   int
			Incomplete int `json:"incomplete_rounds"`
			Rounds     int
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("bench %v printed %q: %v", args, out, err)
		}
		if res.Scenario != args[0] || res.Sent != res.Delivered || res.Incomplete != 0 {
			t.Fatalf("bench %v: %+v", args, res)
		}
	}
}

// TestEmbeddedNodeLosesNothingAcrossAKill: notifications stored before a
// SIGKILL are replayed after the restart to a client resuming from its
// cursor, in order, followed by new ones.
func TestEmbeddedNodeLosesNothingAcrossAKill(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HERALD_DATA_DIR=" + dir, "HERALD_JWT_SECRET=" + procSecret, "HERALD_API_KEY=" + procAPIKey}
	n := startProcess(t, env...)
	ch, _ := wsTitles(t, n.base, "alice")
	waitUntil(t, "session", func() bool { return presence(t, n.base, "alice") == 1 })
	sendVia(t, n.base, procAPIKey, []string{"alice"}, "seen")
	expect(t, ch, "notification:seen")
	cursor := inboxCursor(t, n.base, "alice")
	for i := 0; i < 3; i++ {
		sendVia(t, n.base, procAPIKey, []string{"alice"}, fmt.Sprint("missed", i))
	}
	n.kill()

	n = startProcess(t, env...)
	sendVia(t, n.base, procAPIKey, []string{"alice"}, "after restart")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.base, "http")+"/v1/ws?since="+cursor+"&token="+userToken(t, "alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for _, want := range []string{"missed0", "missed1", "missed2", "after restart"} {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		var f struct {
			Type         string
			Notification struct{ Title string }
		}
		_ = json.Unmarshal(data, &f)
		if f.Type != "notification" || f.Notification.Title != want {
			t.Fatalf("got %s, want %s", data, want)
		}
	}
}

// inboxCursor returns the cursor of the user's newest notification.
func inboxCursor(t *testing.T, base, user string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/notifications?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+userToken(t, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var inbox struct{ Cursor string }
	if err := json.NewDecoder(resp.Body).Decode(&inbox); err != nil || inbox.Cursor == "" {
		t.Fatalf("inbox cursor: %v", err)
	}
	return inbox.Cursor
}
