package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/redistest"
)

func redisNode(t *testing.T, redisURL, id string, extra ...string) *node {
	t.Helper()
	env := append([]string{
		"HERALD_REDIS_URL=" + redisURL, "HERALD_NODE_ID=" + id, "HERALD_DATA_DIR=" + t.TempDir(),
		"HERALD_JWT_SECRET=" + procSecret, "HERALD_API_KEY=" + procAPIKey, "HERALD_PRESENCE_TTL=2s",
	}, extra...)
	return startProcess(t, env...)
}

// TestTwoNodesShareRedis: a notification sent to node A reaches the user's
// WebSocket on node B and SSE on node A; A's presence sees B's session and
// loses it once B is killed.
func TestTwoNodesShareRedis(t *testing.T) {
	rs := redistest.Start(t)
	a := redisNode(t, rs.URL(), "a")
	b := redisNode(t, rs.URL(), "b")

	onB, _ := wsTitles(t, b.base, "alice")
	onA := sseTitles(t, a.base, "alice")
	waitUntil(t, "both sessions visible from A", func() bool { return presence(t, a.base, "alice") == 2 })

	sendVia(t, a.base, procAPIKey, []string{"alice"}, "across")
	expect(t, onB, "notification:across")
	expect(t, onA, "notification:across")

	b.kill() // SIGKILL: no goodbye, presence must expire
	waitUntil(t, "B's session to expire", func() bool { return presence(t, a.base, "alice") == 1 })
}

// TestPubSubConnectionKilledLosesNothing kills the nodes' pub/sub
// connections while notifications flow: the client still receives every
// one, in order, once (backfill from the stream).
func TestPubSubConnectionKilledLosesNothing(t *testing.T) {
	rs := redistest.Start(t)
	a := redisNode(t, rs.URL(), "a")
	b := redisNode(t, rs.URL(), "b")
	onB, _ := wsTitles(t, b.base, "alice")
	waitUntil(t, "session", func() bool { return presence(t, a.base, "alice") == 1 })

	const total = 200
	var sent atomic.Int32
	done := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			if err := trySend(a.base, procAPIKey, []string{"alice"}, fmt.Sprint(i)); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
		done <- nil
	}()
	client := rs.Client()
	killed := 0
	for killed < 3 && sent.Load() < total {
		if n := sent.Load(); n > int32(40*(killed+1)) {
			if err := client.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatalf("client kill: %v", err)
			}
			killed++
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < total; i++ {
		expect(t, onB, fmt.Sprint("notification:", i))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case extra := <-onB:
		t.Fatalf("unexpected extra frame %q", extra)
	case <-time.After(300 * time.Millisecond):
	}
	if !strings.Contains(b.out.String(), "resubscribing") {
		t.Fatalf("node B never lost its pub/sub connection: the test did not exercise the backfill")
	}
}

// TestClusterScript starts scripts/cluster.sh (Redis, two nodes, nginx) and
// delivers through the load balancer over both transports.
func TestClusterScript(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		requireOrSkip(t, "redis-server")
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			requireOrSkip(t, "nginx")
		}
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	lb, n1, n2, rp := freePort(t), freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(filepath.Join(root, "scripts", "cluster.sh"))
	cmd.Env = append(os.Environ(), "HERALD_BIN="+heraldBin, "CLUSTER_DIR="+t.TempDir(),
		fmt.Sprint("LB_PORT=", lb), fmt.Sprint("NODE1_PORT=", n1), fmt.Sprint("NODE2_PORT=", n2), fmt.Sprint("REDIS_PORT=", rp),
		"HERALD_JWT_SECRET="+procSecret, "HERALD_API_KEY="+procAPIKey)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("cluster output:\n%s", out.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", lb)
	waitUntil(t, "cluster ready through the load balancer", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	ws, _ := wsTitles(t, base, "alice")
	sse := sseTitles(t, base, "alice")
	waitUntil(t, "two sessions", func() bool { return presence(t, base, "alice") == 2 })
	for i := 0; i < 5; i++ {
		sendVia(t, base, procAPIKey, []string{"alice"}, fmt.Sprint("lb", i))
	}
	for i := 0; i < 5; i++ {
		expect(t, ws, fmt.Sprint("notification:lb", i))
		expect(t, sse, fmt.Sprint("notification:lb", i))
	}
	if !strings.Contains(out.String(), "cluster up") {
		t.Fatalf("cluster script did not report readiness")
	}
}

func requireOrSkip(t *testing.T, program string) {
	t.Helper()
	if os.Getenv("HERALD_REQUIRE_REDIS") == "1" {
		t.Fatalf("%s is required (HERALD_REQUIRE_REDIS=1) but not installed", program)
	}
	t.Skipf("%s not installed", program)
}

// TestClientResumesOnAnotherNodeAfterItsNodeDies: the client's node is
// killed; it reconnects to the other node with its cursor and receives what
// was sent meanwhile, in order, once.
func TestClientResumesOnAnotherNodeAfterItsNodeDies(t *testing.T) {
	rs := redistest.Start(t)
	a := redisNode(t, rs.URL(), "a")
	b := redisNode(t, rs.URL(), "b")
	onB, _ := wsTitles(t, b.base, "alice")
	waitUntil(t, "session", func() bool { return presence(t, a.base, "alice") == 1 })
	sendVia(t, a.base, procAPIKey, []string{"alice"}, "first")
	expect(t, onB, "notification:first")
	cursor := inboxCursor(t, a.base, "alice")
	b.kill()
	for i := 0; i < 3; i++ {
		sendVia(t, a.base, procAPIKey, []string{"alice"}, fmt.Sprint("while away ", i))
	}
	resumed, _ := wsTitlesSince(t, a.base, "alice", cursor)
	sendVia(t, a.base, procAPIKey, []string{"alice"}, "live")
	for _, want := range []string{"while away 0", "while away 1", "while away 2", "live"} {
		expect(t, resumed, "notification:"+want)
	}
}
