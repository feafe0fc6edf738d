// Package brokertest is the conformance suite every broker.Broker passes:
// cursor assignment, ordered gap-free delivery to subscribed users only,
// counted subscriptions, history paging and the resume rules.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// Factory returns a broker delivering to h, with retention r. Calls within
// one test share one back-end, so two calls give two nodes of a cluster
// where the implementation supports that.
type Factory func(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker

// Sink records handler calls.
type Sink struct {
	mu     sync.Mutex
	events []*notification.Event
}

// Handle is a broker.Handler.
func (s *Sink) Handle(ev *notification.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

// Titles returns the received events of user as "seq:title".
func (s *Sink) Titles(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.events {
		if ev.User == user {
			out = append(out, fmt.Sprintf("%d:%s", ev.Cursor.Seq, titleOf(ev)))
		}
	}
	return out
}

// WaitFor waits until user has n events.
func (s *Sink) WaitFor(t *testing.T, user string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := s.Titles(user)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %d events, want %d: %v", user, len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func titleOf(ev *notification.Event) string {
	// Payloads are the notifications this suite made: the title is enough.
	const key = `"title":"`
	p := string(ev.Payload)
	for i := 0; i+len(key) <= len(p); i++ {
		if p[i:i+len(key)] == key {
			j := i + len(key)
			k := j
			for k < len(p) && p[k] != '"' {
				k++
			}
			return p[j:k]
		}
	}
	return ""
}

// Event makes a notification event for user.
func Event(user, title string) *notification.Event {
	ev, err := notification.NewEvent(&notification.Notification{
		ID: user + "-" + title, User: user, Title: title, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		panic(err)
	}
	return ev
}

func publish(t *testing.T, b broker.Broker, events ...*notification.Event) {
	t.Helper()
	if err := b.Publish(context.Background(), events); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func seqs(events []*notification.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, ev := range events {
		out[i] = ev.Cursor.Seq
	}
	return out
}

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	ctx := context.Background()
	def := broker.Retention{}

	t.Run("CursorsCountPerUserFromOne", func(t *testing.T) {
		b := factory(t, func(*notification.Event) {}, def)
		evs := []*notification.Event{Event("a", "1"), Event("b", "1"), Event("a", "2"), Event("a", "3")}
		publish(t, b, evs...)
		if got := fmt.Sprint(seqs(evs)); got != "[1 1 2 3]" {
			t.Fatalf("seqs %s", got)
		}
		if evs[0].Cursor.Epoch == "" || evs[0].Cursor.Epoch != evs[2].Cursor.Epoch {
			t.Fatalf("epochs %q %q", evs[0].Cursor.Epoch, evs[2].Cursor.Epoch)
		}
	})

	t.Run("DeliversSubscribedUsersInOrder", func(t *testing.T) {
		sink := &Sink{}
		b := factory(t, sink.Handle, def)
		if err := b.Subscribe(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		publish(t, b, Event("a", "x"), Event("b", "y"), Event("a", "z"))
		got := sink.WaitFor(t, "a", 2)
		if fmt.Sprint(got) != "[1:x 2:z]" {
			t.Fatalf("a got %v", got)
		}
		time.Sleep(100 * time.Millisecond)
		if got := sink.Titles("b"); len(got) != 0 {
			t.Fatalf("unsubscribed user b delivered: %v", got)
		}
	})

	t.Run("SubscriptionsAreCounted", func(t *testing.T) {
		sink := &Sink{}
		b := factory(t, sink.Handle, def)
		for i := 0; i < 2; i++ {
			if err := b.Subscribe(ctx, "a"); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Unsubscribe(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		publish(t, b, Event("a", "still"))
		sink.WaitFor(t, "a", 1)
		if err := b.Unsubscribe(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		publish(t, b, Event("a", "gone"), Event("c", "marker"))
		if err := b.Subscribe(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		publish(t, b, Event("c", "after"))
		sink.WaitFor(t, "c", 1)
		if got := sink.Titles("a"); len(got) != 1 {
			t.Fatalf("after last unsubscribe a got %v", got)
		}
	})

	t.Run("ConcurrentPublishersKeepOneGapFreeOrder", func(t *testing.T) {
		sink := &Sink{}
		b := factory(t, sink.Handle, def)
		if err := b.Subscribe(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		const writers, each = 8, 25
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if err := b.Publish(ctx, []*notification.Event{Event("a", fmt.Sprint(w, "-", i))}); err != nil {
						t.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		got := sink.WaitFor(t, "a", writers*each)
		sink.mu.Lock()
		defer sink.mu.Unlock()
		var n uint64
		for _, ev := range sink.events {
			n++
			if ev.Cursor.Seq != n {
				t.Fatalf("event %d has seq %d: %v", n, ev.Cursor.Seq, got[:min(len(got), 20)])
			}
		}
	})

	t.Run("HistoryPagesAfterCursor", func(t *testing.T) {
		b := factory(t, func(*notification.Event) {}, def)
		var evs []*notification.Event
		for i := 1; i <= 10; i++ {
			evs = append(evs, Event("a", fmt.Sprint(i)))
		}
		publish(t, b, evs...)
		page, head, err := b.History(ctx, "a", evs[2].Cursor, 4)
		if err != nil || fmt.Sprint(seqs(page)) != "[4 5 6 7]" || head != evs[9].Cursor {
			t.Fatalf("page %v head %v err %v", seqs(page), head, err)
		}
		page, _, err = b.History(ctx, "a", page[3].Cursor, 4)
		if err != nil || fmt.Sprint(seqs(page)) != "[8 9 10]" {
			t.Fatalf("second page %v err %v", seqs(page), err)
		}
		if titleOf(page[0]) != "8" || page[0].ID != "a-8" || page[0].User != "a" {
			t.Fatalf("decoded event %+v", page[0])
		}
		page, _, err = b.History(ctx, "a", evs[9].Cursor, 4)
		if err != nil || len(page) != 0 {
			t.Fatalf("at head: %v %v", seqs(page), err)
		}
		page, head, err = b.History(ctx, "a", notification.Cursor{}, 3)
		if err != nil || fmt.Sprint(seqs(page)) != "[8 9 10]" || head.Seq != 10 {
			t.Fatalf("newest: %v head %v err %v", seqs(page), head, err)
		}
		page, head, err = b.History(ctx, "nobody", notification.Cursor{}, 3)
		if err != nil || len(page) != 0 || !head.IsZero() {
			t.Fatalf("empty history: %v %v %v", page, head, err)
		}
	})

	t.Run("HistoryResetsOnUnresumableCursors", func(t *testing.T) {
		b := factory(t, func(*notification.Event) {}, broker.Retention{MaxCount: 5})
		var evs []*notification.Event
		for i := 1; i <= 8; i++ {
			evs = append(evs, Event("a", fmt.Sprint(i)))
		}
		publish(t, b, evs...)
		epoch := evs[0].Cursor.Epoch
		cases := map[string]notification.Cursor{
			"foreign epoch":    {Epoch: "zzzzzzzzzz", Seq: 7},
			"past head":        {Epoch: epoch, Seq: 9},
			"trimmed by count": {Epoch: epoch, Seq: 1},
		}
		for name, c := range cases {
			if _, _, err := b.History(ctx, "a", c, 10); !errors.Is(err, broker.ErrReset) {
				t.Errorf("%s: err %v, want ErrReset", name, err)
			}
		}
		// The oldest retained event is 4: resuming from 3 still works.
		page, _, err := b.History(ctx, "a", evs[2].Cursor, 10)
		if err != nil || fmt.Sprint(seqs(page)) != "[4 5 6 7 8]" {
			t.Fatalf("from the edge of retention: %v %v", seqs(page), err)
		}
		if _, _, err := b.History(ctx, "fresh", notification.Cursor{Epoch: epoch, Seq: 1}, 10); !errors.Is(err, broker.ErrReset) {
			t.Errorf("cursor into an empty history: %v", err)
		}
	})

	t.Run("HistoryResetsWhenSuccessorIsTooOld", func(t *testing.T) {
		b := factory(t, func(*notification.Event) {}, broker.Retention{MaxAge: 2 * time.Second})
		old := Event("a", "old")
		publish(t, b, Event("a", "older"), old)
		time.Sleep(1200 * time.Millisecond)
		publish(t, b, Event("a", "new"))
		// "older" and "old" are now at least 2.4 s old, past MaxAge whatever
		// the machine's load; "new" has 0.8 s of slack.
		time.Sleep(1200 * time.Millisecond)
		_, _, err := b.History(ctx, "a", notification.Cursor{Epoch: old.Cursor.Epoch, Seq: 1}, 10)
		if !errors.Is(err, broker.ErrReset) {
			t.Fatalf("aged-out successor: %v", err)
		}
		page, _, err := b.History(ctx, "a", old.Cursor, 10)
		if err != nil || len(page) != 1 || titleOf(page[0]) != "new" {
			t.Fatalf("fresh successor: %v %v", page, err)
		}
		page, _, err = b.History(ctx, "a", notification.Cursor{}, 10)
		if err != nil || len(page) != 1 {
			t.Fatalf("newest must skip aged events: %d %v", len(page), err)
		}
	})

	t.Run("PublishAfterCloseFails", func(t *testing.T) {
		b := factory(t, func(*notification.Event) {}, def)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, []*notification.Event{Event("a", "x")}); err == nil {
			t.Fatal("publish after close succeeded")
		}
	})
}

// RunCluster checks two brokers sharing one back-end: each node receives
// the events of users it subscribed to, whichever node published them.
func RunCluster(t *testing.T, factory Factory) {
	ctx := context.Background()
	t.Run("CrossNodeDelivery", func(t *testing.T) {
		sa, sb := &Sink{}, &Sink{}
		a := factory(t, sa.Handle, broker.Retention{})
		b := factory(t, sb.Handle, broker.Retention{})
		if err := b.Subscribe(ctx, "u"); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 20; i++ {
			publish(t, a, Event("u", fmt.Sprint(i)))
		}
		got := sb.WaitFor(t, "u", 20)
		for i, g := range got {
			if want := fmt.Sprintf("%d:%d", i+1, i+1); g != want {
				t.Fatalf("node b event %d = %s, want %s", i, g, want)
			}
		}
		if len(sa.Titles("u")) != 0 {
			t.Fatal("node a received events of a user it did not subscribe to")
		}
		page, _, err := b.History(ctx, "u", notification.Cursor{}, 100)
		if err != nil || len(page) != 20 {
			t.Fatalf("history from the other node: %d %v", len(page), err)
		}
	})
}
