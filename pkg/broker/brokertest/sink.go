package brokertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// WaitTimeout bounds every wait of the suite for a delivery. It is long on
// purpose: the suite runs on small, shared machines, and a wait that
// succeeds returns as soon as the events are there.
const WaitTimeout = 10 * time.Second

// quiet is how long the suite waits before concluding that something was
// not delivered, after a later delivery to a subscribed user has arrived.
// It only has to let a wrong delivery show up, never a right one, so a
// slow machine makes the check weaker, not flaky.
const quiet = 200 * time.Millisecond

// Sink is a broker.Handler that records what it receives, per user.
type Sink struct {
	mu     sync.Mutex
	events map[string][]*notification.Event
}

// Handle is the broker.Handler.
func (s *Sink) Handle(ev *notification.Event) {
	s.mu.Lock()
	if s.events == nil {
		s.events = make(map[string][]*notification.Event)
	}
	s.events[ev.User] = append(s.events[ev.User], ev)
	s.mu.Unlock()
}

// Events returns the events received for user, in arrival order.
func (s *Sink) Events(user string) []*notification.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*notification.Event(nil), s.events[user]...)
}

// Titles returns the events received for user as "seq:title".
func (s *Sink) Titles(user string) []string {
	return titles(s.Events(user))
}

// WaitFor waits until at least n events of user have arrived and returns
// them as "seq:title"; it fails the test after WaitTimeout.
func (s *Sink) WaitFor(t testing.TB, user string, n int) []string {
	t.Helper()
	return titles(s.WaitForEvents(t, user, n))
}

// WaitForEvents waits until at least n events of user have arrived and
// returns them; it fails the test after WaitTimeout.
func (s *Sink) WaitForEvents(t testing.TB, user string, n int) []*notification.Event {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		got := s.Events(user)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d events arrived within %s, want %d: %v", user, len(got), WaitTimeout, n, titles(got))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Event makes a notification event for user with the given title, created
// now.
func Event(user, title string) *notification.Event {
	return EventAt(user, title, time.Now().UTC())
}

// EventAt makes a notification event for user with the given title,
// created at at. Retention ages events by their creation time, so an old
// event needs no sleeping.
func EventAt(user, title string, at time.Time) *notification.Event {
	ev, err := notification.NewEvent(&notification.Notification{
		ID: user + "-" + title, User: user, Title: title, Tag: "tag-" + title, CreatedAt: at,
	})
	if err != nil {
		panic(err) // a Notification of strings always marshals
	}
	return ev
}

// Title returns the title of a notification event the suite made.
func Title(ev *notification.Event) string {
	var n struct {
		Title string `json:"title"`
	}
	_ = json.Unmarshal(ev.Payload, &n)
	return n.Title
}

func titles(events []*notification.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = fmt.Sprintf("%d:%s", ev.Cursor.Seq, Title(ev))
	}
	return out
}

func seqs(events []*notification.Event) string {
	out := make([]uint64, len(events))
	for i, ev := range events {
		out[i] = ev.Cursor.Seq
	}
	return fmt.Sprint(out)
}

func publish(t testing.TB, b broker.Broker, events ...*notification.Event) {
	t.Helper()
	if err := b.Publish(context.Background(), events); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func subscribe(t testing.TB, b broker.Broker, user string) {
	t.Helper()
	if err := b.Subscribe(context.Background(), user); err != nil {
		t.Fatalf("subscribe %s: %v", user, err)
	}
}

func unsubscribe(t testing.TB, b broker.Broker, user string) {
	t.Helper()
	if err := b.Unsubscribe(context.Background(), user); err != nil {
		t.Fatalf("unsubscribe %s: %v", user, err)
	}
}

// checkGapFree fails unless events are exactly seqs 1..n of one epoch, in
// order.
func checkGapFree(t testing.TB, what string, events []*notification.Event, n int) {
	t.Helper()
	if len(events) != n {
		t.Fatalf("%s: %d events, want %d", what, len(events), n)
	}
	for i, ev := range events {
		if ev.Cursor.Seq != uint64(i+1) || ev.Cursor.Epoch != events[0].Cursor.Epoch {
			t.Fatalf("%s: event %d has cursor %v (first %v)", what, i, ev.Cursor, events[0].Cursor)
		}
	}
}

// quietlyWaitFor waits for a marker delivery to user, then a little more,
// so a delivery that should not happen has had its chance to show.
func quietlyWaitFor(t testing.TB, s *Sink, user string, n int) {
	t.Helper()
	s.WaitFor(t, user, n)
	time.Sleep(quiet)
}
