// Package redistest starts real redis-server processes on free loopback
// ports for tests. When redis-server is missing the test is skipped, unless
// HERALD_REQUIRE_REDIS=1, where it fails.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options for Start.
type Options struct {
	AppendOnly bool   // enable AOF persistence
	Dir        string // working directory (default: a temp dir)
}

// Server is a running redis-server.
type Server struct {
	t    testing.TB
	opts Options
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs redis-server for the test and stops it in t.Cleanup.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("HERALD_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server not found and HERALD_REQUIRE_REDIS=1: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	s := &Server{t: t}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	if s.opts.Dir == "" {
		s.opts.Dir = t.TempDir()
	}
	s.port = freePort(t)
	s.start(bin)
	t.Cleanup(s.stop)
	return s
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) start(bin string) {
	s.t.Helper()
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "",
		"--dir", s.opts.Dir, "--protected-mode", "no"}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer PING", s.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URL is the redis:// URL of database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a new client closed at cleanup.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Kill stops the server with SIGKILL.
func (s *Server) Kill() { s.stop() }

// Restart kills the server and starts it again on the same port and
// directory (data survives only with AppendOnly).
func (s *Server) Restart() {
	s.t.Helper()
	s.stop()
	bin, _ := exec.LookPath("redis-server")
	s.start(bin)
}
