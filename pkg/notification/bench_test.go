package notification

import (
	"testing"
	"time"
)

// BenchmarkEncode is what one notification costs to become an event and
// its wire frames: the JSON encode, the envelope stored in history, and
// the WebSocket and SSE frames (each built once, however many sessions
// the user has).
func BenchmarkEncode(b *testing.B) {
	n := &Notification{
		ID: "01JD0000000000000000000000", User: "alice", Type: "message.sent", Title: "Bob",
		Body: "Hello! Are we still on for lunch tomorrow?", URL: "/chat/c1", Tag: "c1", Urgency: UrgencyNormal,
		Data:      []byte(`{"provider":"talkjs","conversationId":"c1","messageId":"m1","senderId":"bob"}`),
		CreatedAt: time.Now(),
	}
	cur := Cursor{Epoch: "e1", Seq: 42}
	b.ReportAllocs()
	for b.Loop() {
		ev, err := NewEvent(n)
		if err != nil {
			b.Fatal(err)
		}
		ev.Cursor = cur
		_ = ev.MarshalEnvelope()
		_ = ev.WSFrame()
		_ = ev.SSEFrame()
	}
}
