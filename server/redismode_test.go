package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/pkg/redistest"
)

// TestRedisMode runs the node-level behaviour tests again with the Redis
// back-ends, each on its own redis-server.
func TestRedisMode(t *testing.T) {
	tests := redisModeTests()
	tests["SlowConsumer"] = testSlowConsumerIsCutOffWithoutSlowingOthers
	runRedisModeTests(t, tests, redisBackends, func() {})
}

// TestRedisClusterMode runs them on a 3-primary / 3-replica Redis Cluster
// (HERALD_REDIS_CLUSTER_ADDRS), one cluster emptied between the tests.
func TestRedisClusterMode(t *testing.T) {
	cl := redistest.StartCluster(t)
	b := sharedBackend("RedisCluster", func(c *configT) { c.RedisClusterAddrs = cl.Addrs() })
	runRedisModeTests(t, redisModeTests(), b, cl.FlushAll)
}

// TestRedisSentinelMode runs them on a primary found through three
// Sentinels (HERALD_REDIS_SENTINEL_ADDRS), one set emptied between the
// tests.
func TestRedisSentinelMode(t *testing.T) {
	s := redistest.StartSentinel(t)
	b := sharedBackend("RedisSentinel", func(c *configT) { c.RedisSentinelAddrs, c.RedisSentinelMaster = s.Addrs(), s.MasterName() })
	runRedisModeTests(t, redisModeTests(), b, s.FlushAll)
}

// runRedisModeTests runs tests one after another on b, calling reset
// before each.
func runRedisModeTests(t *testing.T, tests map[string]func(*testing.T, nodeBackend), b nodeBackend, reset func()) {
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { reset(); fn(t, b) })
	}
}

// redisModeTests are the node-level tests every Redis form runs.
func redisModeTests() map[string]func(*testing.T, nodeBackend) {
	return map[string]func(*testing.T, nodeBackend){
		"WSDelivers":     testWSDeliversNotification,
		"SSEDelivers":    testSSEDeliversNotification,
		"ResumeInOrder":  testResumeDeliversMissedInOrder,
		"ResumeResets":   testResumeUnknownCursorResets,
		"ResumeFromHead": testResumeFromHeadDeliversNothingOld,
		"Inbox":          testInboxListsOwnNotificationsOldestFirst,
		"Idempotent":     testSendIsIdempotent,
		"Presence":       testPresenceCountsLocalSessions,
		"Shutdown":       testShutdownClosesWebSocketsWithServiceRestart,
		"OwnStreamOnly":  testUsersOnlyReceiveTheirOwnStream,
		"ReadState":      testReadState,
		"ClearDevices":   testReadClearsDevices,
	}
}

// TestRedisDownAnswers503: with Redis gone, sends fail with 503 (so callers
// retry) and readiness says so; both recover when Redis is back.
func TestRedisDownAnswers503(t *testing.T) {
	rs := redistest.Start(t)
	n := startNode(t, func(c *configT) { c.RedisURL = rs.URL() })
	n.mustSend([]string{"alice"}, "before")
	rs.Kill()
	status, body := n.send(map[string]any{"to": []string{"alice"}, "title": "while down"})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("send with redis down: %d %s", status, body)
	}
	if status, body := n.do(http.MethodGet, "/readyz", "", nil); status != http.StatusServiceUnavailable || strings.TrimSpace(string(body)) != `{"ready":false}` {
		t.Fatalf("readyz with redis down: %d %s; want 503 {\"ready\":false} and nothing of why", status, body)
	}
	rs.Restart()
	waitFor(t, "ready again", func() bool { s, _ := n.do(http.MethodGet, "/readyz", "", nil); return s == http.StatusOK })
	n.mustSend([]string{"alice"}, "after")
}

// TestRedisClusterDownAnswers503: the same with the whole Redis Cluster
// gone and back.
func TestRedisClusterDownAnswers503(t *testing.T) {
	cl := redistest.StartCluster(t)
	n := startNode(t, func(c *configT) { c.RedisClusterAddrs = cl.Addrs() })
	redisDownAndBack(t, n, cl.KillAll, cl.RestartAll)
}

// TestRedisSentinelDownAnswers503: the same with both servers of a
// Sentinel set gone and back.
func TestRedisSentinelDownAnswers503(t *testing.T) {
	s := redistest.StartSentinel(t)
	n := startNode(t, func(c *configT) { c.RedisSentinelAddrs, c.RedisSentinelMaster = s.Addrs(), s.MasterName() })
	redisDownAndBack(t, n, s.KillServers, s.RestartServers)
}

func redisDownAndBack(t *testing.T, n *testNode, kill, restart func()) {
	t.Helper()
	ws := n.mustDialWS("alice", "")
	waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
	n.mustSend([]string{"alice"}, "before")
	if f := ws.mustNext(); f.Notification.Title != "before" {
		t.Fatalf("got %+v", f)
	}
	kill()
	status, body := n.send(map[string]any{"to": []string{"alice"}, "title": "while down"})
	if status != http.StatusServiceUnavailable {
		t.Fatalf("send with redis down: %d %s", status, body)
	}
	if status, body := n.do(http.MethodGet, "/readyz", "", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with redis down: %d %s", status, body)
	}
	restart()
	waitFor(t, "ready again", func() bool { s, _ := n.do(http.MethodGet, "/readyz", "", nil); return s == http.StatusOK })
	waitFor(t, "sending again", func() bool {
		s, _ := n.send(map[string]any{"id": "after-1", "to": []string{"alice"}, "title": "after"})
		return s == http.StatusAccepted
	})
	// The live session still receives. Redis kept nothing, so the
	// history started over, which the session is told with a reset first.
	f := ws.mustNext()
	if f.Type == "reset" {
		f = ws.mustNext()
	}
	if f.Type != "notification" || f.Notification.Title != "after" {
		t.Fatalf("after recovery got %+v", f)
	}
}

// TestRedisSentinelCredentials: with the Sentinel set and its servers
// behind passwords (HERALD_REDIS_SENTINEL_PASSWORD for the sentinels,
// HERALD_REDIS_PASSWORD for the data servers) a node with both delivers;
// a node missing either, or with a wrong one, does not start, and its
// error names the setting to fix (waiting would not help, unlike Redis
// being down).
func TestRedisSentinelCredentials(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.WithPasswords("data-pw", "sentinel-pw"))
	form := func(data, sentinel string) func(*configT) {
		return func(c *configT) {
			c.RedisSentinelAddrs, c.RedisSentinelMaster = s.Addrs(), s.MasterName()
			c.RedisPassword, c.RedisSentinelPassword = data, sentinel
		}
	}
	t.Run("right", func(t *testing.T) {
		n := startNode(t, form("data-pw", "sentinel-pw"))
		ws := n.mustDialWS("alice", "")
		waitFor(t, "session", func() bool { return n.srv.Hub().LocalSessions("alice") == 1 })
		n.mustSend([]string{"alice"}, "through the sentinels")
		if f := ws.mustNext(); f.Notification.Title != "through the sentinels" {
			t.Fatalf("got %+v", f)
		}
		if status, body := n.do(http.MethodGet, "/readyz", "", nil); status != http.StatusOK {
			t.Fatalf("readyz: %d %s", status, body)
		}
	})
	for _, tc := range []struct{ name, data, sentinel, names string }{
		{"wrong data password", "nope", "sentinel-pw", "HERALD_REDIS_PASSWORD"},
		{"no data password", "", "sentinel-pw", "HERALD_REDIS_PASSWORD"},
		{"wrong sentinel password", "data-pw", "nope", "HERALD_REDIS_SENTINEL_PASSWORD"},
		{"no sentinel password", "data-pw", "", "HERALD_REDIS_SENTINEL_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			form(tc.data, tc.sentinel)(cfg)
			srv, err := New(context.Background(), cfg, nil)
			if err == nil {
				_ = srv.Shutdown(context.Background())
				t.Fatal("the node started with credentials Redis refuses")
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("error %q does not name %s", err, tc.names)
			}
		})
	}
}
