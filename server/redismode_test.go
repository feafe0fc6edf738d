package server

import "testing"

// TestRedisMode runs the node-level behaviour tests again with the Redis
// back-ends: startNode gives every test under this name its own
// redis-server.
func TestRedisMode(t *testing.T) {
	tests := map[string]func(*testing.T){
		"WSDelivers":     TestWSDeliversNotification,
		"SSEDelivers":    TestSSEDeliversNotification,
		"ResumeInOrder":  TestResumeDeliversMissedInOrder,
		"ResumeResets":   TestResumeUnknownCursorResets,
		"ResumeFromHead": TestResumeFromHeadDeliversNothingOld,
		"Inbox":          TestInboxListsOwnNotificationsOldestFirst,
		"Idempotent":     TestSendIsIdempotent,
		"Presence":       TestPresenceCountsLocalSessions,
		"Shutdown":       TestShutdownClosesWebSocketsWithServiceRestart,
		"OwnStreamOnly":  TestUsersOnlyReceiveTheirOwnStream,
		"SlowConsumer":   TestSlowConsumerIsCutOffWithoutSlowingOthers,
	}
	for name, fn := range tests {
		t.Run(name, fn)
	}
}
