package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

// eventAt makes an event created at the given time; age filtering reads
// the envelope's Created, so aged events need no sleeping.
func eventAt(user, title string, at time.Time) *notification.Event {
	ev := brokertest.Event(user, title)
	ev.Created = at
	return ev
}

func TestHistoryResumeRules(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, srv, func(*notification.Event) {}, redisbroker.Options{
		Retention: broker.Retention{MaxCount: 5, MaxAge: time.Hour},
	})
	old := time.Now().Add(-2 * time.Hour)
	// counted: 8 events, the newest 5 (4..8) retained by count.
	var counted []*notification.Event
	for i := 1; i <= 8; i++ {
		counted = append(counted, brokertest.Event("counted", fmt.Sprint(i)))
	}
	// aged: 1 and 2 are past MaxAge, 3 is fresh.
	aged := []*notification.Event{eventAt("aged", "1", old), eventAt("aged", "2", old), brokertest.Event("aged", "3")}
	publish(t, b, append(counted, aged...)...)
	epoch := counted[0].Cursor.Epoch
	agedEpoch := aged[0].Cursor.Epoch

	cases := []struct {
		name  string
		user  string
		since notification.Cursor
		want  string // seqs, or "reset"
	}{
		{"foreign epoch", "counted", notification.Cursor{Epoch: "zzzzzzzzzz", Seq: 7}, "reset"},
		{"past head", "counted", notification.Cursor{Epoch: epoch, Seq: 9}, "reset"},
		{"successor trimmed by count", "counted", notification.Cursor{Epoch: epoch, Seq: 2}, "reset"},
		{"successor is the oldest retained", "counted", counted[2].Cursor, "[4 5 6]"},
		{"at head", "counted", counted[7].Cursor, "[]"},
		{"newest", "counted", notification.Cursor{}, "[6 7 8]"},
		{"successor too old", "aged", notification.Cursor{Epoch: agedEpoch, Seq: 1}, "reset"},
		{"fresh successor", "aged", aged[1].Cursor, "[3]"},
		{"newest skips aged", "aged", notification.Cursor{}, "[3]"},
		{"cursor into an empty history", "nobody", notification.Cursor{Epoch: epoch, Seq: 1}, "reset"},
		{"newest of an empty history", "nobody", notification.Cursor{}, "[]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, head, err := b.History(context.Background(), tc.user, tc.since, 3)
			if tc.want == "reset" {
				if !errors.Is(err, broker.ErrReset) {
					t.Fatalf("err %v, want ErrReset", err)
				}
			} else if err != nil || fmt.Sprint(seqsOfEvents(events)) != tc.want {
				t.Fatalf("got %v %v, want %s", seqsOfEvents(events), err, tc.want)
			}
			switch tc.user {
			case "counted":
				if head != counted[7].Cursor {
					t.Fatalf("head %v", head)
				}
			case "nobody":
				if !head.IsZero() {
					t.Fatalf("head of an empty history %v", head)
				}
			}
		})
	}
}

func seqsOfEvents(events []*notification.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, ev := range events {
		out[i] = ev.Cursor.Seq
	}
	return out
}

// TestRedisLosingDataStartsANewEpoch: a Redis restart without persistence
// loses the histories. Old cursors are answered with ErrReset instead of
// being resolved against the new history, and a node subscribed across the
// restart delivers the new history from its start.
func TestRedisLosingDataStartsANewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	rec := newRecorder()
	pub := newBroker(t, srv, newRecorder().handle, redisbroker.Options{})
	node := newBroker(t, srv, rec.handle, redisbroker.Options{})
	subscribe(t, node, "a")
	before := []*notification.Event{brokertest.Event("a", "1"), brokertest.Event("a", "2")}
	publish(t, pub, before...)
	rec.wait(t, "a", 2)

	srv.Restart()
	var after []*notification.Event
	waitUntil(t, "a publish after the restart", func() bool {
		evs := []*notification.Event{brokertest.Event("a", "new1"), brokertest.Event("a", "new2")}
		if pub.Publish(context.Background(), evs) != nil {
			return false
		}
		after = evs
		return true
	})
	if after[0].Cursor.Epoch == before[0].Cursor.Epoch || after[0].Cursor.Seq != 1 {
		t.Fatalf("after data loss: cursor %v, before %v", after[0].Cursor, before[0].Cursor)
	}
	for _, c := range []notification.Cursor{before[0].Cursor, before[1].Cursor} {
		if _, _, err := pub.History(context.Background(), "a", c, 10); !errors.Is(err, broker.ErrReset) {
			t.Fatalf("old cursor %v: %v", c, err)
		}
	}
	got := rec.wait(t, "a", 4)
	if got[2] != after[0].Cursor || got[3] != after[1].Cursor {
		t.Fatalf("delivered %v, want the new history %v %v after the old", got, after[0].Cursor, after[1].Cursor)
	}
}

// TestAppendOnlyRedisKeepsCursorsAcrossRestart: with persistence, the
// history and its epoch survive a restart, and old cursors resume.
func TestAppendOnlyRedisKeepsCursorsAcrossRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAppendOnly())
	b := newBroker(t, srv, func(*notification.Event) {}, redisbroker.Options{})
	first := brokertest.Event("a", "1")
	publish(t, b, first, brokertest.Event("a", "2"))
	srv.Restart()
	next := brokertest.Event("a", "3")
	waitUntil(t, "a publish after the restart", func() bool {
		return b.Publish(context.Background(), []*notification.Event{next}) == nil
	})
	if next.Cursor.Epoch != first.Cursor.Epoch || next.Cursor.Seq != 3 {
		t.Fatalf("after restart: %v, before %v", next.Cursor, first.Cursor)
	}
	events, _, err := b.History(context.Background(), "a", first.Cursor, 10)
	if err != nil || fmt.Sprint(seqsOfEvents(events)) != "[2 3]" {
		t.Fatalf("resume after restart: %v %v", seqsOfEvents(events), err)
	}
}
