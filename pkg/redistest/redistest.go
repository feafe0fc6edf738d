// Package redistest owns the real redis-server processes that tests run
// against: each test gets its own server on a free loopback port, stopped
// when the test ends. When redis-server is not installed the test is
// skipped, except when HERALD_REQUIRE_REDIS=1 (CI), where it fails.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv names the environment variable that turns a missing
// redis-server from a skip into a failure.
const RequireEnv = "HERALD_REQUIRE_REDIS"

// startTimeout bounds how long a server may take to answer PING; generous
// because test machines are shared and slow.
const startTimeout = 20 * time.Second

// Option configures Start.
type Option func(*config)

type config struct {
	appendOnly bool
	dir        string
	extra      []string // further redis-server arguments
	cluster    bool     // cluster mode, with its bus on a second free port
	sentinel   string   // non-empty: run as a sentinel with this config file
	password   string   // requirepass: clients must AUTH with it
}

// withArgs appends redis-server arguments (cluster and replica settings).
func withArgs(args ...string) Option {
	return func(c *config) { c.extra = append(c.extra, args...) }
}

// WithAppendOnly turns on AOF persistence (fsync on every write), so data
// survives Kill and Restart.
func WithAppendOnly() Option { return func(c *config) { c.appendOnly = true } }

// WithDir sets the server's working directory, where the AOF lives. The
// default is a fresh t.TempDir().
func WithDir(dir string) Option { return func(c *config) { c.dir = dir } }

// Server is a redis-server process owned by one test.
type Server struct {
	t    testing.TB
	bin  string
	cfg  config
	port int
	bus  int // cluster bus port, in cluster mode

	mu   sync.Mutex
	proc *process // nil while stopped
}

// Start runs redis-server on a free loopback port, waits until it answers
// PING and stops it when the test ends. Without persistence options it runs
// with --save "" --appendonly no.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return start(t, lookPath(t, "redis-server"), opts...)
}

// lookPath finds a program the tests need, skipping the test when it is
// missing unless RequireEnv is set.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redistest: %s not found and %s=1: %v", name, RequireEnv, err)
		}
		t.Skipf("redistest: %s not installed (set %s=1 to fail instead)", name, RequireEnv)
	}
	return bin
}

func start(t testing.TB, bin string, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, bin: bin}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.dir == "" {
		s.cfg.dir = t.TempDir()
	}
	t.Cleanup(s.Kill)

	// Another process may take the free port before redis-server binds it;
	// a few fresh ports make that race harmless.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.port = freePort(t)
		if s.cfg.cluster {
			s.bus = freePort(t)
		}
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) args() []string {
	var args []string
	if s.cfg.sentinel != "" {
		// A sentinel rewrites its config file, which must exist; the
		// persistence settings below are not its business.
		return append([]string{s.cfg.sentinel,
			"--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1",
			"--dir", s.cfg.dir,
			"--protected-mode", "no",
		}, s.cfg.extra...)
	}
	if s.cfg.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(s.bus),
			"--cluster-config-file", "nodes.conf",
		)
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.cfg.dir,
		"--save", "",
		"--protected-mode", "no",
	)
	if s.cfg.appendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	return append(args, s.cfg.extra...)
}

// launch starts the process on s.port and waits until it answers PING.
func (s *Server) launch() error {
	p, err := startProcess(s.bin, s.args())
	if err != nil {
		return err
	}
	if err := waitReady(s.Addr(), s.cfg.password, p); err != nil {
		p.kill()
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls PING until it succeeds, the process exits, or the start
// timeout passes.
func waitReady(addr, password string, p *process) error {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server on %s exited: %v\n%s", addr, p.waitErr, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within %s: %v\n%s", addr, startTimeout, err, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the redis:// URL of database 0, as HERALD_REDIS_URL takes it.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.cfg.password})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server with SIGKILL, as a crash would; it does nothing when
// the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Restart kills the server (if running) and starts it again on the same
// port and directory. Data survives only with WithAppendOnly.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	// The old process released the port; retry briefly in case the kernel
	// has not caught up.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// process is one running redis-server.
type process struct {
	cmd     *exec.Cmd
	out     *tailBuffer
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed
}

func startProcess(bin string, args []string) (*process, error) {
	p := &process{out: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := startOwned(p.cmd, p.exited, &p.waitErr); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	return p, nil
}

// kill sends SIGKILL and waits until the process is reaped. An error from
// Kill means the process has already exited, which the wait confirms.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// tailBuffer keeps the last max bytes of the server's log for error
// messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
