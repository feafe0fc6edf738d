package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

func appendOK(t *testing.T, s *Store, events ...*notification.Event) {
	t.Helper()
	if err := s.Append(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func seqsOf(events []*notification.Event) string {
	out := make([]uint64, len(events))
	for i, ev := range events {
		out[i] = ev.Cursor.Seq
	}
	return fmt.Sprint(out)
}

func TestAppendAssignsGapFreeSequencesPerUser(t *testing.T) {
	s, clk := openTemp(t, Options{})
	batch1 := []*notification.Event{event(t, "a", "1", clk.t), event(t, "b", "1", clk.t), event(t, "a", "2", clk.t)}
	batch2 := []*notification.Event{event(t, "b", "2", clk.t), event(t, "a", "3", clk.t), event(t, "c", "1", clk.t)}
	appendOK(t, s, batch1...)
	appendOK(t, s, batch2...)
	want := map[string]uint64{"a-1": 1, "b-1": 1, "a-2": 2, "b-2": 2, "a-3": 3, "c-1": 1}
	for _, ev := range append(batch1, batch2...) {
		if ev.Cursor.Seq != want[ev.ID] || ev.Cursor.Epoch != s.Epoch() {
			t.Errorf("%s: cursor %v, want seq %d of epoch %s", ev.ID, ev.Cursor, want[ev.ID], s.Epoch())
		}
	}
}

func TestAppendIsAllOrNothing(t *testing.T) {
	s, clk := openTemp(t, Options{})
	ctx := context.Background()
	bad := event(t, "a", "bad", clk.t)
	bad.Payload = []byte("not json")
	cases := map[string][]*notification.Event{
		"payload not a JSON object": {event(t, "a", "1", clk.t), bad},
		"empty user":                {event(t, "a", "1", clk.t), {Payload: []byte("{}")}},
		"nil event":                 {event(t, "a", "1", clk.t), nil},
	}
	for name, events := range cases {
		if err := s.Append(ctx, events); err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if !events[0].Cursor.IsZero() {
			t.Fatalf("%s: the good event got cursor %v", name, events[0].Cursor)
		}
	}
	if evs, head, err := s.Range(ctx, "a", notification.Cursor{}, 10); err != nil || len(evs) != 0 || !head.IsZero() {
		t.Fatalf("history after failed appends: %v head %v err %v", seqsOf(evs), head, err)
	}
	good := event(t, "a", "1", clk.t)
	appendOK(t, s, good)
	if good.Cursor.Seq != 1 {
		t.Fatalf("failed appends used up sequences: %v", good.Cursor)
	}
}

func TestAppendStampsMissingCreated(t *testing.T) {
	s, clk := openTemp(t, Options{})
	ev := event(t, "a", "1", time.Time{})
	appendOK(t, s, ev)
	if !ev.Created.Equal(clk.t) {
		t.Fatalf("created %v, want %v", ev.Created, clk.t)
	}
	evs, _, err := s.Range(context.Background(), "a", notification.Cursor{}, 1)
	if err != nil || len(evs) != 1 || !evs[0].Created.Equal(clk.t) {
		t.Fatalf("stored event: %v %v", evs, err)
	}
}

func TestRangeDecodesWhatWasAppended(t *testing.T) {
	s, clk := openTemp(t, Options{})
	n := event(t, "a", "1", clk.t.Add(-time.Second))
	r, err := notification.NewRetractEvent("a", "a-1", "tag-1", clk.t)
	if err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, n, r)
	evs, _, err := s.Range(context.Background(), "a", notification.Cursor{}, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("range: %v %v", evs, err)
	}
	for i, in := range []*notification.Event{n, r} {
		out := evs[i]
		if out.User != in.User || out.Cursor != in.Cursor || out.Kind != in.Kind || out.ID != in.ID ||
			out.Tag != in.Tag || !out.Created.Equal(in.Created) || !bytes.Equal(out.Payload, in.Payload) {
			t.Errorf("event %d: got %+v, want %+v", i, out, in)
		}
	}
}

func TestRangeResumeRules(t *testing.T) {
	s, clk := openTemp(t, Options{Retention: broker.Retention{MaxCount: 5, MaxAge: time.Hour}})
	old := clk.t.Add(-2 * time.Hour)
	// counted: 8 events, of which the newest 5 (4..8) are retained.
	var counted []*notification.Event
	for i := 1; i <= 8; i++ {
		counted = append(counted, event(t, "counted", fmt.Sprint(i), clk.t))
	}
	// aged: 1 and 2 are past MaxAge when appended, 3 is fresh.
	aged := []*notification.Event{event(t, "aged", "1", old), event(t, "aged", "2", old), event(t, "aged", "3", clk.t)}
	appendOK(t, s, append(counted, aged...)...)
	// slow: appended fresh, then left to age on the clock; 1 ages out
	// before 2.
	slow := []*notification.Event{event(t, "slow", "1", clk.t.Add(-30*time.Minute)), event(t, "slow", "2", clk.t)}
	appendOK(t, s, slow...)
	clk.advance(45 * time.Minute)

	epoch := s.Epoch()
	cases := []struct {
		name  string
		user  string
		since notification.Cursor
		limit int
		want  string // seqs, or "reset"
		head  uint64
	}{
		{"after a cursor", "counted", counted[4].Cursor, 10, "[6 7 8]", 8},
		{"a page", "counted", counted[3].Cursor, 2, "[5 6]", 8},
		{"at head", "counted", counted[7].Cursor, 10, "[]", 8},
		{"successor is the oldest retained", "counted", counted[2].Cursor, 10, "[4 5 6 7 8]", 8},
		{"newest, oldest first", "counted", notification.Cursor{}, 3, "[6 7 8]", 8},
		{"newest, fewer than the limit", "counted", notification.Cursor{}, 100, "[4 5 6 7 8]", 8},
		{"limit below one counts as one", "counted", notification.Cursor{}, 0, "[8]", 8},
		{"foreign epoch", "counted", notification.Cursor{Epoch: "zzzzzzzzzz", Seq: 7}, 10, "reset", 8},
		{"past head", "counted", notification.Cursor{Epoch: epoch, Seq: 9}, 10, "reset", 8},
		{"successor trimmed by count", "counted", notification.Cursor{Epoch: epoch, Seq: 2}, 10, "reset", 8},
		{"before the first, trimmed", "counted", notification.Cursor{Epoch: epoch, Seq: 0}, 10, "reset", 8},
		{"successor trimmed by age on append", "aged", notification.Cursor{Epoch: epoch, Seq: 1}, 10, "reset", 3},
		{"fresh successor", "aged", aged[1].Cursor, 10, "[3]", 3},
		{"newest skips aged", "aged", notification.Cursor{}, 10, "[3]", 3},
		{"successor aged since it was appended", "slow", notification.Cursor{Epoch: epoch, Seq: 0}, 10, "reset", 2},
		{"successor still fresh", "slow", slow[0].Cursor, 10, "[2]", 2},
		{"newest filters by age on read", "slow", notification.Cursor{}, 10, "[2]", 2},
		{"cursor into an empty history", "nobody", notification.Cursor{Epoch: epoch, Seq: 1}, 10, "reset", 0},
		{"newest of an empty history", "nobody", notification.Cursor{}, 10, "[]", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, head, err := s.Range(context.Background(), tc.user, tc.since, tc.limit)
			if tc.want == "reset" {
				if !errors.Is(err, broker.ErrReset) {
					t.Fatalf("got %s %v, want ErrReset", seqsOf(events), err)
				}
			} else if err != nil || seqsOf(events) != tc.want {
				t.Fatalf("got %s %v, want %s", seqsOf(events), err, tc.want)
			}
			wantHead := notification.Cursor{}
			if tc.head > 0 {
				wantHead = notification.Cursor{Epoch: epoch, Seq: tc.head}
			}
			if head != wantHead {
				t.Fatalf("head %v, want %v", head, wantHead)
			}
		})
	}
}

func TestAppendTrimsByCount(t *testing.T) {
	s, clk := openTemp(t, Options{Retention: broker.Retention{MaxCount: 3}})
	for i := 1; i <= 5; i++ {
		appendOK(t, s, event(t, "a", fmt.Sprint(i), clk.t))
	}
	// One append of more events than the limit keeps only the newest.
	var big []*notification.Event
	for i := 6; i <= 12; i++ {
		big = append(big, event(t, "a", fmt.Sprint(i), clk.t))
	}
	appendOK(t, s, big...)
	if n := storedCount(t, s, "a"); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
	evs, _, err := s.Range(context.Background(), "a", notification.Cursor{}, 10)
	if err != nil || seqsOf(evs) != "[10 11 12]" {
		t.Fatalf("retained %s %v", seqsOf(evs), err)
	}
}

func TestSweepTrimsIdleHistoriesAndKeepsSequences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	// More users than one sweep transaction visits; "a" ages out, "b"
	// exceeds a count limit lowered at the next start.
	for i := 0; i < 2*sweepChunk+10; i++ {
		appendOK(t, s, event(t, fmt.Sprintf("u%04d", i), "1", now.Add(-2*time.Hour)))
	}
	appendOK(t, s, event(t, "a", "1", now.Add(-2*time.Hour)), event(t, "a", "2", now.Add(-90*time.Minute)))
	for i := 1; i <= 10; i++ {
		appendOK(t, s, event(t, "b", fmt.Sprint(i), now))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{Retention: broker.Retention{MaxCount: 4, MaxAge: time.Hour}})
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int{"a": 0, "b": 4, "u0000": 0, fmt.Sprintf("u%04d", 2*sweepChunk+9): 0} {
		if n := storedCount(t, s, user); n != want {
			t.Errorf("%s: %d events stored after sweep, want %d", user, n, want)
		}
	}
	evs, head, err := s.Range(ctx, "a", notification.Cursor{}, 10)
	if err != nil || len(evs) != 0 || head.Seq != 2 {
		t.Fatalf("emptied history: %s head %v %v", seqsOf(evs), head, err)
	}
	next := event(t, "a", "3", now)
	appendOK(t, s, next)
	if next.Cursor.Seq != 3 {
		t.Fatalf("sequence after an emptied history: %v", next.Cursor)
	}
	if _, _, err := s.Range(ctx, "a", notification.Cursor{Epoch: s.Epoch(), Seq: 1}, 10); !errors.Is(err, broker.ErrReset) {
		t.Fatalf("cursor whose successor was swept: %v", err)
	}
}

// storedCount counts the events kept for user, whatever their age.
func storedCount(t *testing.T, s *Store, user string) int {
	t.Helper()
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		if ub := tx.Bucket(bucketHistory).Bucket([]byte(user)); ub != nil {
			n = ub.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "herald.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			events := make([]*notification.Event, size)
			for i := range events {
				events[i] = event(b, fmt.Sprintf("u%d", i), "t", time.Now())
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Append(ctx, events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
		})
	}
}
