package localbroker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/localbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/histlog"
)

func openStore(t testing.TB, r broker.Retention) *histlog.Store {
	t.Helper()
	st, err := histlog.Open(t.TempDir(), histlog.Options{Retention: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newBroker(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker {
	st := openStore(t, r)
	// The handler registers after New, as the hub does.
	b := localbroker.New(st, nil, localbroker.Options{})
	b.RegisterHandler(h)
	t.Cleanup(func() { _ = b.Close() }) // runs before the store's cleanup
	return b
}

func TestConformance(t *testing.T) { brokertest.Run(t, newBroker) }

func TestEventIsInHistoryWhenDelivered(t *testing.T) {
	st := openStore(t, broker.Retention{})
	missing := make(chan string, 100)
	handler := func(ev *notification.Event) {
		since := notification.Cursor{Epoch: ev.Cursor.Epoch, Seq: ev.Cursor.Seq - 1}
		got, _, err := st.Range(context.Background(), ev.User, since, 1)
		if err != nil || len(got) != 1 || got[0].ID != ev.ID {
			missing <- fmt.Sprintf("%s at %v: %d events, %v", ev.ID, ev.Cursor, len(got), err)
		}
	}
	b := localbroker.New(st, handler, localbroker.Options{})
	defer b.Close()
	ctx := context.Background()
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := b.Publish(ctx, []*notification.Event{brokertest.Event("a", fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	close(missing)
	for m := range missing {
		t.Error("delivered before it was in history: " + m)
	}
}

func TestPublishRejectsEventsWithoutUser(t *testing.T) {
	b := newBroker(t, func(*notification.Event) {}, broker.Retention{})
	ctx := context.Background()
	for name, evs := range map[string][]*notification.Event{
		"nil event":  {brokertest.Event("a", "1"), nil},
		"empty user": {{Payload: []byte("{}")}},
	} {
		if err := b.Publish(ctx, evs); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadyFollowsBrokerAndStore(t *testing.T) {
	ctx := context.Background()
	st, err := histlog.Open(t.TempDir(), histlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := localbroker.New(st, func(*notification.Event) {}, localbroker.Options{})
	defer b.Close()
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); err == nil {
		t.Fatal("ready with the store closed")
	}
	if err := b.Publish(ctx, []*notification.Event{brokertest.Event("a", "1")}); err == nil {
		t.Fatal("publish with the store closed")
	}
	_ = b.Close()
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("ready after close: %v", err)
	}
	if _, _, err := b.History(ctx, "a", notification.Cursor{}, 1); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("history after close: %v", err)
	}
}

func TestPublishHonoursCanceledContext(t *testing.T) {
	b := newBroker(t, func(*notification.Event) {}, broker.Retention{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := brokertest.Event("a", "1")
	if err := b.Publish(ctx, []*notification.Event{ev}); !errors.Is(err, context.Canceled) {
		t.Fatalf("publish: %v", err)
	}
	if _, head, err := b.History(context.Background(), "a", notification.Cursor{}, 1); err != nil || !head.IsZero() {
		t.Fatalf("a canceled publish was appended: head %v %v", head, err)
	}
}

// BenchmarkPublish measures the broker and the embedded store together,
// each disk sync included. One op is one event, so -benchmem reports
// allocations per event.
func BenchmarkPublish(b *testing.B) {
	b.Run("concurrent-callers/one-event-each", func(b *testing.B) {
		br := benchBroker(b)
		// Many concurrent callers, as many webhook requests would be: the
		// writer commits what queues up during each disk sync.
		b.SetParallelism(32)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			// Reused: Publish is done with an event when it returns.
			ev := []*notification.Event{brokertest.Event("u", "t")}
			for pb.Next() {
				if err := br.Publish(ctx, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	for _, users := range []int{10, 100} {
		b.Run(fmt.Sprintf("one-caller/fan-out-%d", users), func(b *testing.B) {
			br := benchBroker(b)
			ctx := context.Background()
			events := make([]*notification.Event, users)
			for i := range events {
				events[i] = brokertest.Event(fmt.Sprint("user", i), "t")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += users {
				if err := br.Publish(ctx, events); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchBroker(b *testing.B) *localbroker.Broker {
	st := openStore(b, broker.Retention{MaxAge: time.Hour})
	br := localbroker.New(st, func(*notification.Event) {}, localbroker.Options{})
	b.Cleanup(func() { _ = br.Close() })
	ctx := context.Background()
	// Half the users are subscribed, so delivery is part of the cost.
	for i := 0; i < 100; i += 2 {
		if err := br.Subscribe(ctx, fmt.Sprint("user", i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := br.Subscribe(ctx, "u"); err != nil {
		b.Fatal(err)
	}
	return br
}
