package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/pkg/redistest"
)

// TestRedisMode runs the node-level behaviour tests again with the Redis
// back-ends, each on its own redis-server.
func TestRedisMode(t *testing.T) {
	tests := map[string]func(*testing.T, nodeBackend){
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
		"SlowConsumer":   testSlowConsumerIsCutOffWithoutSlowingOthers,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { fn(t, redisBackends) })
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
