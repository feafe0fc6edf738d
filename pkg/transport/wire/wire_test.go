package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

func TestFramesCarryTheCursor(t *testing.T) {
	ev, _ := notification.NewEvent(&notification.Notification{ID: "n1", User: "alice", Title: "Hi"})
	ev.Cursor = notification.Cursor{Epoch: "ep", Seq: 3}
	var ws struct {
		Type         string
		Notification notification.Notification
	}
	if err := json.Unmarshal(wire.WSMessage(ev), &ws); err != nil {
		t.Fatalf("ws frame %s: %v", wire.WSMessage(ev), err)
	}
	if ws.Type != "notification" || ws.Notification.Cursor != "ep-3" || ws.Notification.ID != "n1" {
		t.Fatalf("ws frame %s", wire.WSMessage(ev))
	}
	want := "id: ep-3\nevent: notification\ndata: " + string(ev.JSON()) + "\n\n"
	if string(wire.SSERecord(ev)) != want {
		t.Fatalf("sse frame %q, want %q", wire.SSERecord(ev), want)
	}
	r, _ := notification.NewRetractEvent("alice", "n1", "c1", time.Now())
	r.Cursor = notification.Cursor{Epoch: "ep", Seq: 4}
	if got := string(wire.WSMessage(r)); got != `{"type":"retract","cursor":"ep-4","id":"n1","tag":"c1"}` {
		t.Fatalf("retract frame %s", got)
	}
	reset := notification.NewResetEvent("alice", notification.Cursor{Epoch: "ep", Seq: 9})
	if got := string(wire.WSMessage(reset)); got != `{"type":"reset","cursor":"ep-9"}` {
		t.Fatalf("reset frame %s", got)
	}
	if got := string(wire.SSERecord(reset)); got != "id: ep-9\nevent: reset\ndata: {\"cursor\":\"ep-9\"}\n\n" {
		t.Fatalf("reset sse %q", got)
	}
}

// TestWSFrameIsOneFrame: the frame is a final, unmasked text frame whose
// length field (in each of its three sizes) covers exactly the message.
func TestWSFrameIsOneFrame(t *testing.T) {
	for _, size := range []int{1, 60, 125, 126, 200, 65535, 65536, 70000} {
		ev, err := notification.NewEvent(&notification.Notification{ID: "n1", User: "u", Body: strings.Repeat("x", size)})
		if err != nil {
			t.Fatal(err)
		}
		ev.Cursor = notification.Cursor{Epoch: "ep", Seq: 1}
		wire, msg := wire.WSFrame(ev), wire.WSMessage(ev)
		if wire[0] != 0x81 || wire[1]&0x80 != 0 {
			t.Fatalf("body %d: header % x", size, wire[:2])
		}
		var n, h int
		switch l := int(wire[1]); l {
		case 126:
			n, h = int(binary.BigEndian.Uint16(wire[2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(wire[2:])), 10
		default:
			n, h = l, 2
		}
		if n != len(msg) || h+n != len(wire) || !bytes.Equal(wire[h:], msg) {
			t.Fatalf("body %d: header says %d bytes after %d, message has %d, frame %d", size, n, h, len(msg), len(wire))
		}
	}
}

// BenchmarkEncode is what one notification costs to become an event and
// its wire frames: the JSON encode, the envelope stored in history, and
// the WebSocket and SSE frames (each built once, however many sessions
// the user has).
func BenchmarkEncode(b *testing.B) {
	n := &notification.Notification{
		ID: "01JD0000000000000000000000", User: "alice", Type: "message.sent", Title: "Bob",
		Body: "Hello! Are we still on for lunch tomorrow?", URL: "/chat/c1", Tag: "c1", Urgency: notification.UrgencyNormal,
		Data:      []byte(`{"provider":"talkjs","conversationId":"c1","messageId":"m1","senderId":"bob"}`),
		CreatedAt: time.Now(),
	}
	cur := notification.Cursor{Epoch: "e1", Seq: 42}
	b.ReportAllocs()
	for b.Loop() {
		ev, err := notification.NewEvent(n)
		if err != nil {
			b.Fatal(err)
		}
		ev.Cursor = cur
		_ = ev.MarshalEnvelope()
		_ = wire.WSFrame(ev)
		_ = wire.SSERecord(ev)
	}
}

func TestParseAck(t *testing.T) {
	long := strings.Repeat("x", wire.MaxAckID+1)
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`{"type":"ack","id":"n1"}`, []string{"n1"}},
		{`{"type":"ack","ids":["a","b"]}`, []string{"a", "b"}},
		{`{"type":"ack","ids":["a","b","c","d"]}`, nil}, // over maxIDs
		{`{"type":"ack","id":"` + long + `"}`, nil},
		{`{"type":"ack"}`, nil},
		{`{"type":"read","id":"n1"}`, nil},
		{`not json`, nil},
	} {
		var one [1]string
		got, ok := wire.ParseAck([]byte(tc.in), &one, 3)
		if ok != (tc.want != nil) || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("ParseAck(%.40s) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

// TestReadStateFrames: a read or dismissal is a "read" message, a mark of
// seen a "seen" one, counts an "unread" one; each carries its cursor and
// the payload's members, and SSE names the event the same.
func TestReadStateFrames(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ev      func() *notification.Event
		ws, sse string
	}{
		{func() *notification.Event {
			ev, _ := notification.NewMarkEvent("alice", &notification.Mark{State: "read", IDs: []string{"n1"}, At: at, By: "api"})
			return ev
		}, `{"type":"read","cursor":"ep-5","state":"read","ids":["n1"],"at":"2026-12-07T10:00:00Z","by":"api"}`, "read"},
		{func() *notification.Event {
			ev, _ := notification.NewMarkEvent("alice", &notification.Mark{State: "dismissed", Tag: "c1", At: at})
			return ev
		}, `{"type":"read","cursor":"ep-5","state":"dismissed","tag":"c1","at":"2026-12-07T10:00:00Z"}`, "read"},
		{func() *notification.Event {
			ev, _ := notification.NewMarkEvent("alice", &notification.Mark{State: "seen", UpTo: "ep-4", At: at})
			return ev
		}, `{"type":"seen","cursor":"ep-5","state":"seen","up_to":"ep-4","at":"2026-12-07T10:00:00Z"}`, "seen"},
		{func() *notification.Event {
			ev, _ := notification.NewUnreadEvent("alice", &notification.Unread{Total: 2, Tags: map[string]int{"c1": 2}, AsOf: "ep-4"}, at)
			return ev
		}, `{"type":"unread","cursor":"ep-5","total":2,"tags":{"c1":2},"as_of":"ep-4"}`, "unread"},
		{func() *notification.Event {
			ev, _ := notification.NewMarkEvent("alice", &notification.Mark{State: "delivered", IDs: []string{"n1"}, At: at, Devices: []string{"d1"}})
			return ev
		}, `{"type":"delivered","cursor":"ep-5","state":"delivered","ids":["n1"],"at":"2026-12-07T10:00:00Z","devices":["d1"]}`, "delivered"},
	} {
		ev := tc.ev()
		ev.Cursor = notification.Cursor{Epoch: "ep", Seq: 5}
		if got := string(wire.WSMessage(ev)); got != tc.ws {
			t.Errorf("ws %s, want %s", got, tc.ws)
		}
		if got, want := string(wire.SSERecord(ev)), "id: ep-5\nevent: "+tc.sse+"\ndata: "+string(ev.JSON())+"\n\n"; got != want {
			t.Errorf("sse %q, want %q", got, want)
		}
	}
}
