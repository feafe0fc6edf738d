package queuelog

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"
	"time"
)

// FuzzOpenAfterATornWrite: a crash leaves part of a record after the last
// whole one of the newest segment, followed by whatever the disk held; the
// queue opens with exactly what was written before it, and goes on.
func FuzzOpenAfterATornWrite(f *testing.F) {
	f.Add(uint16(0), []byte{})
	f.Add(uint16(3), []byte{0x20, 0, 0, 0})
	f.Add(uint16(9), []byte{1, 2, 3, 4, 1, 1, 1, 'c'})
	f.Add(uint16(0), bytes.Repeat([]byte{0}, 64))
	f.Add(uint16(12), []byte{0, 0, 0, 0, 0, 0, 0, 0, 9, 9})
	torn := appendItem(nil, 3, 0, 0, time.Now().UnixNano(), time.Now().Add(time.Hour).UnixNano(), "c", []byte("c"))
	f.Fuzz(func(t *testing.T, cut uint16, junk []byte) {
		k := int(cut) % len(torn) // never the whole record
		tail := append(slices.Clone(torn[:k]), junk...)
		if bytes.HasPrefix(junk, torn[k:]) {
			t.Skip("the junk completes the record: a whole write, not a torn one")
		}
		ctx := context.Background()
		dir := t.TempDir()
		opts := Options{KeyFlush: time.Hour}
		l, err := Open(dir, newMemBacking(), opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"a", "b"} {
			if _, err := l.Enqueue(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		items, err := l.Read(ctx, 1, time.Second)
		if err != nil || len(items) != 1 {
			t.Fatalf("read %d, %v", len(items), err)
		}
		if err := l.Ack(ctx, items[0].ID); err != nil {
			t.Fatal(err)
		}
		seg := l.segs[len(l.segs)-1]
		path, size := seg.f.Name(), seg.size
		l.Close()
		file, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.WriteAt(tail, size); err != nil {
			t.Fatal(err)
		}
		file.Close()

		l, err = Open(dir, newMemBacking(), opts)
		if err != nil {
			t.Fatalf("open after a torn write of % x: %v", tail, err)
		}
		defer l.Close()
		got, err := l.Read(ctx, 10, 10*time.Millisecond)
		if err != nil || len(got) != 1 || string(got[0].Body) != "b" || got[0].Attempts != 1 {
			t.Fatalf("after a torn write of % x: read %v, %v; want b on its first attempt", tail, bodies(got), err)
		}
		for _, k := range []string{"a", "b"} {
			if dup, err := l.Enqueue(ctx, k, []byte(k)); err != nil || !dup {
				t.Fatalf("after a torn write of % x: key %s dup=%v err=%v", tail, k, dup, err)
			}
		}
		if dup, err := l.Enqueue(ctx, "c", []byte("c")); err != nil || dup {
			t.Fatalf("enqueue after a torn write of % x: dup=%v err=%v", tail, dup, err)
		}
	})
}
