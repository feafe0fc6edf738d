// Package brokertest is the conformance suite of broker.Broker: every
// implementation runs it from its own tests with a constructor. It owns the
// behaviour the hub relies on whichever back-end runs: cursors counted per
// user from 1, ordered gap-free delivery to subscribed users only, counted
// subscriptions, history paging and head, and the resume rules (ErrReset).
//
// Run checks one broker at a time. RunCluster checks brokers that share a
// back-end, as the nodes of a cluster do; only implementations that can be
// constructed twice over one back-end (redisbroker) run it.
//
// The suite waits for deliveries with generous deadlines and asserts no
// timing: it is meant to pass on a slow, shared machine under the race
// detector.
package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// Factory returns a new broker delivering to h, with retention r, and
// arranges for it to be closed when t ends. Within one test every call
// shares one back-end, so two calls give two nodes of a cluster where the
// implementation supports that (see RunCluster); different tests must not
// see each other's histories.
type Factory func(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker

// Run runs the single-broker suite against brokers made by factory.
func Run(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"CursorsCountFromOnePerUser", testCursors},
		{"HandlerGetsSubscribedUsersInOrder", testDeliveryToSubscribed},
		{"SubscriptionsAreCounted", testCountedSubscriptions},
		{"ConcurrentPublishersToOneUserLeaveNoGaps", testConcurrentPublishers},
		{"HistoryPagesAfterCursor", testHistoryPaging},
		{"HistoryKeepsEventsIntact", testHistoryRoundTrip},
		{"HistoryResetsWhenCursorCannotResume", testResumeRules},
		{"HistoryResetsOnceEventsAgeOut", testAgeOnTheClock},
		{"CloseStopsTheBroker", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, factory) })
	}
}

func nop(*notification.Event) {}

func testCursors(t *testing.T, factory Factory) {
	b := factory(t, nop, broker.Retention{})
	if err := b.Publish(context.Background(), nil); err != nil {
		t.Fatalf("publishing nothing: %v", err)
	}
	steps := []struct {
		events []*notification.Event
		want   string
	}{
		{[]*notification.Event{Event("a", "1"), Event("b", "1"), Event("a", "2")}, "[1 1 2]"},
		{[]*notification.Event{Event("a", "3"), Event("c", "1"), Event("b", "2"), Event("a", "4")}, "[3 1 2 4]"},
		{[]*notification.Event{Event("c", "2")}, "[2]"},
		{[]*notification.Event{Event("a", "5")}, "[5]"},
	}
	epochs := map[string]string{}
	for i, st := range steps {
		publish(t, b, st.events...)
		if got := seqs(st.events); got != st.want {
			t.Fatalf("publish %d: seqs %s, want %s", i, got, st.want)
		}
		for _, ev := range st.events {
			c := ev.Cursor
			if c.Epoch == "" {
				t.Fatalf("%s: cursor %v has no epoch", ev.ID, c)
			}
			if e, ok := epochs[ev.User]; ok && e != c.Epoch {
				t.Fatalf("%s: epoch %q, earlier events of %s had %q", ev.ID, c.Epoch, ev.User, e)
			}
			epochs[ev.User] = c.Epoch
			if back, err := notification.ParseCursor(c.String()); err != nil || back != c {
				t.Fatalf("%s: cursor %v does not survive its string form: %v %v", ev.ID, c, back, err)
			}
		}
	}
}

func testDeliveryToSubscribed(t *testing.T, factory Factory) {
	sink := &Sink{}
	b := factory(t, sink.Handle, broker.Retention{})
	subscribe(t, b, "a")
	publish(t, b, Event("a", "x"), Event("b", "y"), Event("a", "z"))
	publish(t, b, Event("b", "w"))
	publish(t, b, Event("a", "v"))
	quietlyWaitFor(t, sink, "a", 3)
	if got := sink.Titles("a"); fmt.Sprint(got) != "[1:x 2:z 3:v]" {
		t.Fatalf("subscribed user a got %v", got)
	}
	if got := sink.Titles("b"); len(got) != 0 {
		t.Fatalf("unsubscribed user b got %v", got)
	}
}

func testCountedSubscriptions(t *testing.T, factory Factory) {
	sink := &Sink{}
	b := factory(t, sink.Handle, broker.Retention{})
	subscribe(t, b, "marker")
	markers := 0
	// settle publishes a marker to a subscribed user and waits for it, so
	// whatever was published before has had its chance to arrive.
	settle := func() {
		markers++
		publish(t, b, Event("marker", fmt.Sprint(markers)))
		quietlyWaitFor(t, sink, "marker", markers)
	}

	subscribe(t, b, "a")
	subscribe(t, b, "a")
	unsubscribe(t, b, "a")
	publish(t, b, Event("a", "one of two left"))
	sink.WaitFor(t, "a", 1)

	unsubscribe(t, b, "a")
	publish(t, b, Event("a", "none left"))
	settle()
	if got := sink.Titles("a"); fmt.Sprint(got) != "[1:one of two left]" {
		t.Fatalf("after the last unsubscribe a got %v", got)
	}

	// Unsubscribing more often than subscribing leaves no debt behind.
	unsubscribe(t, b, "a")
	unsubscribe(t, b, "never")
	subscribe(t, b, "a")
	subscribe(t, b, "never")
	publish(t, b, Event("a", "again"), Event("never", "first"))
	got := sink.WaitFor(t, "a", 2)
	if got[len(got)-1] != "3:again" {
		t.Fatalf("after subscribing again a got %v", got)
	}
	if got := sink.WaitFor(t, "never", 1); fmt.Sprint(got) != "[1:first]" {
		t.Fatalf("a user unsubscribed before subscribing got %v", got)
	}
}

func testConcurrentPublishers(t *testing.T, factory Factory) {
	sink := &Sink{}
	b := factory(t, sink.Handle, broker.Retention{})
	users := []string{"a", "b"}
	for _, u := range users {
		subscribe(t, b, u)
	}
	const writers, each = 8, 25
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Each writer publishes to "a" alone and, every third
				// time, to both users in one call.
				events := []*notification.Event{Event("a", fmt.Sprintf("w%d-%d", w, i))}
				if i%3 == 0 {
					events = append(events, Event("b", fmt.Sprintf("w%d-%d", w, i)))
				}
				if err := b.Publish(ctx, events); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := map[string]int{"a": writers * each, "b": writers * ((each + 2) / 3)}
	for _, u := range users {
		got := sink.WaitForEvents(t, u, want[u])
		checkGapFree(t, "handler of "+u, got, want[u])
		// Every event once, and each writer's events in its own order.
		seen := map[string]bool{}
		last := map[int]int{}
		for _, ev := range got {
			title := Title(ev)
			if seen[title] {
				t.Fatalf("%s: %s delivered twice", u, title)
			}
			seen[title] = true
			var w, i int
			if _, err := fmt.Sscanf(title, "w%d-%d", &w, &i); err != nil {
				t.Fatalf("%s: unexpected title %q", u, title)
			}
			if prev, ok := last[w]; ok && i <= prev {
				t.Fatalf("%s: writer %d's event %d arrived after its event %d", u, w, i, prev)
			}
			last[w] = i
		}
		history, head, err := b.History(ctx, u, notification.Cursor{}, want[u])
		if err != nil {
			t.Fatalf("history of %s: %v", u, err)
		}
		checkGapFree(t, "history of "+u, history, want[u])
		if head != got[len(got)-1].Cursor {
			t.Fatalf("head of %s is %v, last delivered %v", u, head, got[len(got)-1].Cursor)
		}
		for i := range history {
			if history[i].ID != got[i].ID {
				t.Fatalf("%s: history has %s at seq %d, the handler got %s", u, history[i].ID, i+1, got[i].ID)
			}
		}
	}
}

func testHistoryPaging(t *testing.T, factory Factory) {
	b := factory(t, nop, broker.Retention{})
	ctx := context.Background()
	var evs []*notification.Event
	for i := 1; i <= 10; i++ {
		evs = append(evs, Event("a", fmt.Sprint(i)))
	}
	publish(t, b, evs...)
	cases := []struct {
		name  string
		user  string
		since notification.Cursor
		limit int
		want  string
		head  notification.Cursor
	}{
		{"a page after a cursor", "a", evs[2].Cursor, 4, "[4 5 6 7]", evs[9].Cursor},
		{"the last page is short", "a", evs[6].Cursor, 4, "[8 9 10]", evs[9].Cursor},
		{"at head", "a", evs[9].Cursor, 4, "[]", evs[9].Cursor},
		{"zero cursor gives the newest, oldest first", "a", notification.Cursor{}, 3, "[8 9 10]", evs[9].Cursor},
		{"zero cursor with a large limit gives all", "a", notification.Cursor{}, 100, "[1 2 3 4 5 6 7 8 9 10]", evs[9].Cursor},
		{"an empty history", "nobody", notification.Cursor{}, 3, "[]", notification.Cursor{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, head, err := b.History(ctx, tc.user, tc.since, tc.limit)
			if err != nil || seqs(page) != tc.want || head != tc.head {
				t.Fatalf("got %s head %v err %v, want %s head %v", seqs(page), head, err, tc.want, tc.head)
			}
		})
	}
	t.Run("paging from the first event reaches the head", func(t *testing.T) {
		var all []*notification.Event
		since := evs[0].Cursor
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("no end after %d pages: %s", pages, seqs(all))
			}
			page, _, err := b.History(ctx, "a", since, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			since = page[len(page)-1].Cursor
		}
		if got := seqs(all); got != "[2 3 4 5 6 7 8 9 10]" {
			t.Fatalf("paged %s", got)
		}
	})
}

func testHistoryRoundTrip(t *testing.T, factory Factory) {
	b := factory(t, nop, broker.Retention{})
	// Microseconds: the precision the envelope keeps.
	at := time.Now().UTC().Truncate(time.Microsecond)
	n := EventAt("a", "hello", at)
	r, err := notification.NewRetractEvent("a", n.ID, n.Tag, at.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, n, r)
	got, _, err := b.History(context.Background(), "a", notification.Cursor{}, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("history: %d events, %v", len(got), err)
	}
	for i, want := range []*notification.Event{n, r} {
		ev := got[i]
		if ev.User != want.User || ev.Cursor != want.Cursor || ev.Kind != want.Kind || ev.ID != want.ID ||
			ev.Tag != want.Tag || !ev.Created.Equal(want.Created) || !bytes.Equal(ev.Payload, want.Payload) {
			t.Errorf("event %d: got %+v, want %+v", i, ev, want)
		}
	}
}

func testResumeRules(t *testing.T, factory Factory) {
	b := factory(t, nop, broker.Retention{MaxCount: 5, MaxAge: time.Hour})
	ctx := context.Background()
	// counted: 8 events, of which the newest 5 (4..8) are retained.
	var counted []*notification.Event
	for i := 1; i <= 8; i++ {
		counted = append(counted, Event("counted", fmt.Sprint(i)))
	}
	// aged: 1 and 2 were created before MaxAge, 3 is fresh.
	old := time.Now().Add(-2 * time.Hour)
	aged := []*notification.Event{EventAt("aged", "1", old), EventAt("aged", "2", old), Event("aged", "3")}
	publish(t, b, counted...)
	publish(t, b, aged...)
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
		{"successor trimmed by count", "counted", counted[1].Cursor, "reset"},
		{"successor is the oldest retained", "counted", counted[2].Cursor, "[4 5 6 7 8]"},
		{"zero cursor gives what is retained", "counted", notification.Cursor{}, "[4 5 6 7 8]"},
		{"successor older than MaxAge", "aged", aged[0].Cursor, "reset"},
		{"fresh successor", "aged", aged[1].Cursor, "[3]"},
		{"zero cursor skips aged events", "aged", notification.Cursor{}, "[3]"},
		{"cursor into an empty history", "nobody", notification.Cursor{Epoch: agedEpoch, Seq: 1}, "reset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, _, err := b.History(ctx, tc.user, tc.since, 10)
			if tc.want == "reset" {
				if !errors.Is(err, broker.ErrReset) {
					t.Fatalf("got %s, %v; want ErrReset", seqs(events), err)
				}
				return
			}
			if err != nil || seqs(events) != tc.want {
				t.Fatalf("got %s, %v; want %s", seqs(events), err, tc.want)
			}
		})
	}
}

// testAgeOnTheClock lets real time age events out. It asserts only what
// more time cannot undo, so a slow machine cannot make it fail.
func testAgeOnTheClock(t *testing.T, factory Factory) {
	const maxAge = time.Second
	b := factory(t, nop, broker.Retention{MaxAge: maxAge})
	ctx := context.Background()
	evs := []*notification.Event{Event("a", "1"), Event("a", "2")}
	publish(t, b, evs...)
	time.Sleep(maxAge + maxAge/2)
	if events, _, err := b.History(ctx, "a", evs[0].Cursor, 10); !errors.Is(err, broker.ErrReset) {
		t.Fatalf("resuming when the successor aged out: %s, %v; want ErrReset", seqs(events), err)
	}
	if events, _, err := b.History(ctx, "a", notification.Cursor{}, 10); err != nil || len(events) != 0 {
		t.Fatalf("newest after everything aged out: %s, %v", seqs(events), err)
	}
}

func testClose(t *testing.T, factory Factory) {
	sink := &Sink{}
	b := factory(t, sink.Handle, broker.Retention{})
	ctx := context.Background()
	subscribe(t, b, "a")
	publish(t, b, Event("a", "before"))
	sink.WaitFor(t, "a", 1)
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	ev := Event("a", "after")
	if err := b.Publish(ctx, []*notification.Event{ev}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	if !ev.Cursor.IsZero() {
		t.Fatalf("an event refused after close got cursor %v", ev.Cursor)
	}
	if err := b.Subscribe(ctx, "b"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("subscribe after close: %v, want ErrClosed", err)
	}
	if err := b.Ready(ctx); err == nil {
		t.Fatal("ready after close")
	}
	time.Sleep(quiet)
	if got := sink.Titles("a"); !slices.Equal(got, []string{"1:before"}) {
		t.Fatalf("handler after close: %v", got)
	}
}
