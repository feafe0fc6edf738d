package histlog

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/notification"
)

// FuzzOpenAfterATornWrite: a crash leaves part of a record after the last
// whole one of the newest segment, followed by whatever the disk held; the
// log opens with exactly the events written before it, and appends go on
// from there.
func FuzzOpenAfterATornWrite(f *testing.F) {
	f.Add(uint16(0), []byte{})
	f.Add(uint16(3), []byte{0x20, 0, 0, 0})
	f.Add(uint16(8), []byte{1, 2, 3, 4, 1, 1, 1, 'a', '{'})
	f.Add(uint16(12), bytes.Repeat([]byte{0}, 64))
	next := brokertest.EventAt("a", "2", time.Now())
	next.Created = time.Unix(1700000000, 0)
	torn := appendRecord(nil, kindEvent, "a", 2, next.AppendEnvelope)
	f.Fuzz(func(t *testing.T, cut uint16, junk []byte) {
		k := int(cut) % len(torn) // never the whole record
		tail := append(append([]byte(nil), torn[:k]...), junk...)
		if bytes.HasPrefix(junk, torn[k:]) {
			t.Skip("the junk completes the record: a whole write, not a torn one")
		}
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := s.Append(context.Background(), []*notification.Event{brokertest.EventAt("a", "1", now), brokertest.EventAt("b", "1", now)}); err != nil {
			t.Fatal(err)
		}
		path, size := s.active.f.Name(), s.active.size
		s.Close()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(tail, size); err != nil {
			t.Fatal(err)
		}
		f.Close()

		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatalf("open after a torn write of % x: %v", tail, err)
		}
		defer s.Close()
		for _, user := range []string{"a", "b"} {
			evs, head, err := s.Range(context.Background(), user, notification.Cursor{}, 10)
			if err != nil || len(evs) != 1 || head.Seq != 1 || evs[0].ID != user+"-1" {
				t.Fatalf("after a torn write of % x: %s has %d events, head %v, %v", tail, user, len(evs), head, err)
			}
		}
		again := brokertest.EventAt("a", "2", now)
		if err := s.Append(context.Background(), []*notification.Event{again}); err != nil || again.Cursor.Seq != 2 {
			t.Fatalf("append after a torn write of % x: %v %v", tail, again.Cursor, err)
		}
	})
}
