package sse

import (
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

// TestChunkFraming: a hijacked stream frames each write as one HTTP/1.1
// chunk whose size line counts exactly the records; a held one writes the
// records bare (the ResponseWriter frames them).
func TestChunkFraming(t *testing.T) {
	ev, _ := notification.NewEvent(&notification.Notification{ID: "n1", User: "u", Body: strings.Repeat("é", 300)})
	ev.Cursor = notification.Cursor{Epoch: "ep", Seq: 1}
	records := string(wire.SSERecord(ev)) + string(wire.SSERecord(ev))
	for _, tc := range []struct {
		name   string
		stream *Stream
		events []*notification.Event
		want   string
	}{
		{"hijacked", &Stream{}, []*notification.Event{ev, ev}, hexLen(len(records)) + "\r\n" + records + "\r\n"},
		{"hijacked keep-alive", &Stream{}, nil, hexLen(len(wire.SSEKeepAlive)) + "\r\n" + wire.SSEKeepAlive + "\r\n"},
		{"held", &Stream{held: &held{}}, []*notification.Event{ev, ev}, records},
		{"held keep-alive", &Stream{held: &held{}}, nil, wire.SSEKeepAlive},
	} {
		bp, b := tc.stream.chunk(tc.events)
		if string(b) != tc.want {
			t.Errorf("%s: chunk %q..., want %q...", tc.name, trunc(string(b)), trunc(tc.want))
		}
		putBuf(bp)
	}
}

func hexLen(n int) string { return strconv.FormatInt(int64(n), 16) }

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}
