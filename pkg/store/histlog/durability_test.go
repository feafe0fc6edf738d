package histlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

func TestHistoryAndEpochSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var last *notification.Event
	for i := 1; i <= 100; i++ { // enough for several segments
		last = brokertest.EventAt(fmt.Sprintf("u%d", i%7), fmt.Sprint(i), now)
		appendOK(t, s, last)
	}
	epoch := s.Epoch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
	s = openAt(t, dir, Options{SegmentSize: 4 << 10}, nil)
	if s.Epoch() != epoch {
		t.Fatalf("epoch %q after restart, want %q", s.Epoch(), epoch)
	}
	evs, head, err := s.Range(context.Background(), last.User, notification.Cursor{}, 100)
	if err != nil || head != last.Cursor || len(evs) != 15 || evs[14].ID != last.ID {
		t.Fatalf("after restart: %d events, head %v, %v", len(evs), head, err)
	}
	next := brokertest.EventAt(last.User, "next", now)
	appendOK(t, s, next)
	if next.Cursor.Seq != last.Cursor.Seq+1 {
		t.Fatalf("sequence after restart: %v, want %d", next.Cursor, last.Cursor.Seq+1)
	}
}

// TestTornTailIsCutOff: a crash in the middle of a write leaves a partial
// record at the end of the newest segment; the log opens without it, and
// the sequence numbers it would have taken are handed out again (it was
// never acknowledged).
func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	appendOK(t, s, brokertest.EventAt("a", "1", now), brokertest.EventAt("a", "2", now))
	path := s.active.f.Name()
	size := s.active.size
	appendOK(t, s, brokertest.EventAt("a", "3", now))
	s.Close()
	for _, cut := range []int64{1, segfile.Header - 1, segfile.Header + 3} {
		if err := os.Truncate(path, size+cut); err != nil {
			t.Fatal(err)
		}
		s = openAt(t, dir, Options{}, nil)
		if got := rangeSeqs(t, s, "a", notification.Cursor{}, 10); got != "[1 2]" {
			t.Fatalf("cut at +%d: history %s", cut, got)
		}
		next := brokertest.EventAt("a", "3", now)
		appendOK(t, s, next)
		if next.Cursor.Seq != 3 {
			t.Fatalf("cut at +%d: next cursor %v", cut, next.Cursor)
		}
		s.Close()
	}
}

func TestCorruptionBeforeTheTailFailsOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentSize: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		appendOK(t, s, brokertest.EventAt("a", fmt.Sprint(i), time.Now()))
	}
	s.Close()
	first := filepath.Join(dir, segfile.Name(segmentFiles(t, dir)[0]))
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b[segfile.Header+5] ^= 0xff
	if err := os.WriteFile(first, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("opened a log with a corrupt older segment")
	}
}

func TestSecondOpenFailsWithErrLocked(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, Options{}, nil)
	if s, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestCallsAfterCloseFail(t *testing.T) {
	s, _ := openTemp(t, Options{})
	appendOK(t, s, brokertest.EventAt("a", "1", start))
	s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, []*notification.Event{brokertest.EventAt("a", "2", start)}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
	if _, _, err := s.Range(ctx, "a", notification.Cursor{}, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("range after close: %v", err)
	}
	if err := s.Ready(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("ready after close: %v", err)
	}
	if err := s.Sweep(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("sweep after close: %v", err)
	}
}

// TestSweepDeletesDeadSegmentsAndKeepsSequences: once retention has
// trimmed every event of a segment, Sweep deletes it; users whose newest
// event was in it keep their head, across a restart too, so no cursor is
// handed out twice.
func TestSweepDeletesDeadSegmentsAndKeepsSequences(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: start}
	opts := Options{SegmentSize: 2 << 10, Retention: broker.Retention{MaxCount: 4, MaxAge: time.Hour}}
	s := openAt(t, dir, opts, clk)
	ctx := context.Background()
	// "old" gets two events, then ages out; "busy" keeps receiving, so its
	// older events are trimmed by count; "fresh" gets one event at the end.
	appendOK(t, s, brokertest.EventAt("old", "1", start), brokertest.EventAt("old", "2", start))
	for i := 1; i <= 60; i++ {
		appendOK(t, s, brokertest.EventAt("busy", fmt.Sprint(i), start))
	}
	clk.advance(2 * time.Hour)
	appendOK(t, s, brokertest.EventAt("busy", "61", clk.now()), brokertest.EventAt("fresh", "1", clk.now()))
	before := segmentFiles(t, dir)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	after := segmentFiles(t, dir)
	if len(after) >= len(before) || after[0] == before[0] {
		t.Fatalf("segments %v before sweep, %v after", before, after)
	}
	check := func(s *Store, when string) {
		t.Helper()
		for user, want := range map[string]string{"old": "[]", "busy": "[61]", "fresh": "[1]"} {
			if got := rangeSeqs(t, s, user, notification.Cursor{}, 10); got != want {
				t.Errorf("%s: %s history %s, want %s", when, user, got, want)
			}
		}
		if _, head, _ := s.Range(ctx, "old", notification.Cursor{}, 10); head.Seq != 2 {
			t.Errorf("%s: head of old %v, want 2", when, head)
		}
		if got := rangeSeqs(t, s, "old", notification.Cursor{Epoch: s.Epoch(), Seq: 1}, 10); got != "reset" {
			t.Errorf("%s: cursor whose successor was swept: %s", when, got)
		}
	}
	check(s, "after sweep")
	s.Close()
	s = openAt(t, dir, opts, clk)
	check(s, "after restart")
	next := brokertest.EventAt("old", "3", clk.now())
	appendOK(t, s, next)
	if next.Cursor.Seq != 3 {
		t.Fatalf("sequence after the history was swept: %v", next.Cursor)
	}
}

// TestSweepLowersToANewCountLimit: a count limit lowered at restart
// applies to every user at once.
func TestRestartAppliesALowerCountLimit(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{}, nil)
	for i := 1; i <= 10; i++ {
		appendOK(t, s, brokertest.EventAt("b", fmt.Sprint(i), time.Now()))
	}
	s.Close()
	s = openAt(t, dir, Options{Retention: broker.Retention{MaxCount: 4}}, nil)
	if got := rangeSeqs(t, s, "b", notification.Cursor{}, 100); got != "[7 8 9 10]" {
		t.Fatalf("history %s", got)
	}
}

// TestConcurrentAppendsAndRanges runs readers beside the writer; with the
// race detector this checks the index's locking, and every read sees a
// gap-free tail of what was appended.
func TestConcurrentAppendsAndRanges(t *testing.T) {
	s := openAt(t, t.TempDir(), Options{SegmentSize: 8 << 10, Retention: broker.Retention{MaxCount: 20}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	users := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, user := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				evs, head, err := s.Range(ctx, user, notification.Cursor{}, 50)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				for i, ev := range evs {
					if ev.Cursor.Seq != head.Seq-uint64(len(evs)-1-i) {
						errs <- fmt.Errorf("%s: %s with head %v", user, seqsOf(evs), head)
						return
					}
				}
			}
		}()
	}
	go func() {
		defer cancel()
		for i := 0; i < 300; i++ {
			var batch []*notification.Event
			for _, user := range users[:1+i%len(users)] {
				batch = append(batch, brokertest.EventAt(user, fmt.Sprint(i), time.Now()))
			}
			if err := s.Append(context.Background(), batch); err != nil {
				errs <- err
				return
			}
			if i%50 == 0 {
				if err := s.Sweep(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
