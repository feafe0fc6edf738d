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
	return wsTitlesSince(t, base, user, "")
}

// wsTitlesSince is wsTitles resuming after cursor.
func wsTitlesSince(t *testing.T, base, user, cursor string) (<-chan string, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/ws?token=" + userToken(t, user)
	if cursor != "" {
		u += "&since=" + cursor
	}
	c, _, err := websocket.Dial(ctx, u, nil)
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
