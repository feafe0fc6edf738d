package histlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// clock is a settable time source for retention tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var start = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// openAt opens the log in dir with clk and closes it when the test ends.
func openAt(t *testing.T, dir string, opts Options, clk *clock) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		s.now = clk.now
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTemp(t *testing.T, opts Options) (*Store, *clock) {
	t.Helper()
	clk := &clock{t: start}
	return openAt(t, t.TempDir(), opts, clk), clk
}

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

// rangeSeqs is the sequence numbers Range returns, or "reset".
func rangeSeqs(t *testing.T, s *Store, user string, since notification.Cursor, limit int) string {
	t.Helper()
	evs, _, err := s.Range(context.Background(), user, since, limit)
	if errors.Is(err, broker.ErrReset) {
		return "reset"
	}
	if err != nil {
		t.Fatal(err)
	}
	return seqsOf(evs)
}

func TestAppendAssignsGapFreeSequencesPerUser(t *testing.T) {
	s, _ := openTemp(t, Options{})
	batch1 := []*notification.Event{brokertest.EventAt("a", "1", start), brokertest.EventAt("b", "1", start), brokertest.EventAt("a", "2", start)}
	batch2 := []*notification.Event{brokertest.EventAt("b", "2", start), brokertest.EventAt("a", "3", start), brokertest.EventAt("c", "1", start)}
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
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	bad := brokertest.EventAt("a", "bad", start)
	bad.Payload = []byte("not json")
	cases := map[string][]*notification.Event{
		"payload not a JSON object": {brokertest.EventAt("a", "1", start), bad},
		"empty user":                {brokertest.EventAt("a", "1", start), {Payload: []byte("{}")}},
		"nil event":                 {brokertest.EventAt("a", "1", start), nil},
		"user not UTF-8":            {brokertest.EventAt("a", "1", start), brokertest.EventAt("\xff", "1", start)},
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
	good := brokertest.EventAt("a", "1", start)
	appendOK(t, s, good)
	if good.Cursor.Seq != 1 {
		t.Fatalf("failed appends used up sequences: %v", good.Cursor)
	}
}

// TestFailedWriteTakesNoSequences: a write the disk refuses leaves no
// trace, neither in the index nor in the sequence numbers.
func TestFailedWriteTakesNoSequences(t *testing.T) {
	s, _ := openTemp(t, Options{})
	appendOK(t, s, brokertest.EventAt("a", "1", start))
	// A file opened read-only in place of the segment makes the write fail.
	s.writeMu.Lock()
	real := s.active.f
	ro, err := os.Open(real.Name())
	if err != nil {
		t.Fatal(err)
	}
	s.active.f = ro
	s.writeMu.Unlock()
	failed := brokertest.EventAt("a", "2", start)
	if err := s.Append(context.Background(), []*notification.Event{failed}); err == nil {
		t.Fatal("append to a read-only segment succeeded")
	}
	if !failed.Cursor.IsZero() {
		t.Fatalf("failed event got cursor %v", failed.Cursor)
	}
	s.writeMu.Lock()
	s.active.f = real
	s.broken = nil // the read-only file could not be truncated either
	s.writeMu.Unlock()
	ro.Close()
	next := brokertest.EventAt("a", "2", start)
	appendOK(t, s, next)
	if next.Cursor.Seq != 2 {
		t.Fatalf("after a failed write: cursor %v, want seq 2", next.Cursor)
	}
	if got := rangeSeqs(t, s, "a", notification.Cursor{}, 10); got != "[1 2]" {
		t.Fatalf("history %s", got)
	}
}

func TestAppendStampsMissingCreated(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ev := brokertest.EventAt("a", "1", time.Time{})
	appendOK(t, s, ev)
	if !ev.Created.Equal(start) {
		t.Fatalf("created %v, want %v", ev.Created, start)
	}
	evs, _, err := s.Range(context.Background(), "a", notification.Cursor{}, 1)
	if err != nil || len(evs) != 1 || !evs[0].Created.Equal(start) {
		t.Fatalf("stored event: %v %v", evs, err)
	}
}

func TestRangeDecodesWhatWasAppended(t *testing.T) {
	s, _ := openTemp(t, Options{})
	n := brokertest.EventAt("a", "1", start.Add(-time.Second))
	r, err := notification.NewRetractEvent("a", "a-1", "tag-1", start)
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
	old := start.Add(-2 * time.Hour)
	// counted: 8 events, of which the newest 5 (4..8) are retained.
	var counted []*notification.Event
	for i := 1; i <= 8; i++ {
		counted = append(counted, brokertest.EventAt("counted", fmt.Sprint(i), start))
	}
	// aged: 1 and 2 are past MaxAge when appended, 3 is fresh.
	aged := []*notification.Event{brokertest.EventAt("aged", "1", old), brokertest.EventAt("aged", "2", old), brokertest.EventAt("aged", "3", start)}
	appendOK(t, s, append(counted, aged...)...)
	// slow: appended fresh, then left to age on the clock; 1 ages out
	// before 2.
	slow := []*notification.Event{brokertest.EventAt("slow", "1", start.Add(-30*time.Minute)), brokertest.EventAt("slow", "2", start)}
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
		{"successor past the age limit", "aged", notification.Cursor{Epoch: epoch, Seq: 1}, 10, "reset", 3},
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
	s, _ := openTemp(t, Options{Retention: broker.Retention{MaxCount: 3}})
	for i := 1; i <= 5; i++ {
		appendOK(t, s, brokertest.EventAt("a", fmt.Sprint(i), start))
	}
	// One append of more events than the limit keeps only the newest.
	var big []*notification.Event
	for i := 6; i <= 12; i++ {
		big = append(big, brokertest.EventAt("a", fmt.Sprint(i), start))
	}
	appendOK(t, s, big...)
	if n := retained(s, "a"); n != 3 {
		t.Fatalf("%d events retained, want 3", n)
	}
	if got := rangeSeqs(t, s, "a", notification.Cursor{}, 10); got != "[10 11 12]" {
		t.Fatalf("retained %s", got)
	}
}

// retained counts the index entries of user, whatever their age.
func retained(s *Store, user string) int {
	sh := s.index.shard(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if u := sh.lookup(user); u != nil {
		return len(u.locs)
	}
	return 0
}

func segmentFiles(t *testing.T, dir string) []uint32 {
	t.Helper()
	ids, err := segfile.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
