package localbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/histlog"
)

// gatedLog is the history log with its first Append held until the
// test opens the gate, so the test can line up requests behind it.
type gatedLog struct {
	*histlog.Store
	gate   chan struct{}
	sweeps atomic.Int32

	mu      sync.Mutex
	appends []int // events per Append call
}

func newGatedLog(t *testing.T) *gatedLog {
	st, err := histlog.Open(t.TempDir(), histlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &gatedLog{Store: st, gate: make(chan struct{})}
}

func (g *gatedLog) Append(ctx context.Context, events []*notification.Event) error {
	g.mu.Lock()
	g.appends = append(g.appends, len(events))
	first := len(g.appends) == 1
	g.mu.Unlock()
	if first {
		<-g.gate
	}
	return g.Store.Append(ctx, events)
}

func (g *gatedLog) Sweep(ctx context.Context) error {
	g.sweeps.Add(1)
	return g.Store.Sweep(ctx)
}

func (g *gatedLog) appendSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.appends...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(brokertest.WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// holdWriter publishes one event and waits until the writer is inside the
// held Append, so that later publishes queue up. It returns the first
// publish's outcome.
func holdWriter(t *testing.T, b *Broker, g *gatedLog) <-chan error {
	first := make(chan error, 1)
	go func() {
		first <- b.Publish(context.Background(), []*notification.Event{brokertest.Event("a", "first")})
	}()
	waitUntil(t, "the writer holds the first append", func() bool { return len(g.appendSizes()) == 1 })
	return first
}

// queue starts a publish of events in the background.
func queue(ctx context.Context, b *Broker, events ...*notification.Event) <-chan error {
	done := make(chan error, 1)
	go func() { done <- b.Publish(ctx, events) }()
	return done
}

func TestQueuedPublishesAreCommittedTogether(t *testing.T) {
	g := newGatedLog(t)
	sink := &brokertest.Sink{}
	b := New(g, sink.Handle, Options{})
	defer b.Close()
	if err := b.Subscribe(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	first := holdWriter(t, b, g)
	const callers = 5
	var results []<-chan error
	for i := 0; i < callers; i++ {
		results = append(results, queue(context.Background(), b, brokertest.Event("a", fmt.Sprint(i)), brokertest.Event("b", fmt.Sprint(i))))
	}
	waitUntil(t, "every caller is queued", func() bool { return len(b.queue) == callers })
	close(g.gate)
	for _, r := range append(results, first) {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(g.appendSizes()); got != fmt.Sprint([]int{1, 2 * callers}) {
		t.Fatalf("appends of %s events, want one group commit after the first", got)
	}
	events := sink.WaitForEvents(t, "a", callers+1)
	for i, ev := range events {
		if ev.Cursor.Seq != uint64(i+1) {
			t.Fatalf("delivery %d has cursor %v", i, ev.Cursor)
		}
	}
}

func TestGroupCommitRespectsMaxBatch(t *testing.T) {
	g := newGatedLog(t)
	b := New(g, func(*notification.Event) {}, Options{MaxBatch: 4})
	defer b.Close()
	first := holdWriter(t, b, g)
	var results []<-chan error
	for i := 0; i < 5; i++ {
		results = append(results, queue(context.Background(), b, brokertest.Event("a", fmt.Sprint(i, "x")), brokertest.Event("a", fmt.Sprint(i, "y"))))
		// One at a time, so the queue order, and so the batches, are known.
		waitUntil(t, "the caller is queued", func() bool { return len(b.queue) == i+1 })
	}
	close(g.gate)
	for _, r := range append(results, first) {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(g.appendSizes()); got != "[1 4 4 2]" {
		t.Fatalf("appends of %s events, want [1 4 4 2]", got)
	}
}

func TestFailedGroupCommitFailsOnlyTheBadCaller(t *testing.T) {
	g := newGatedLog(t)
	sink := &brokertest.Sink{}
	b := New(g, sink.Handle, Options{})
	defer b.Close()
	if err := b.Subscribe(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	first := holdWriter(t, b, g)
	good1 := queue(context.Background(), b, brokertest.Event("a", "good1"))
	waitUntil(t, "queued", func() bool { return len(b.queue) == 1 })
	bad := brokertest.Event("a", "bad")
	bad.Payload = []byte("not a JSON object") // the store refuses it
	badDone := queue(context.Background(), b, bad)
	waitUntil(t, "queued", func() bool { return len(b.queue) == 2 })
	good2 := queue(context.Background(), b, brokertest.Event("a", "good2"))
	waitUntil(t, "queued", func() bool { return len(b.queue) == 3 })
	close(g.gate)
	for name, r := range map[string]<-chan error{"first": first, "good1": good1, "good2": good2} {
		if err := <-r; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := <-badDone; err == nil {
		t.Error("the bad event was accepted")
	}
	if !bad.Cursor.IsZero() {
		t.Errorf("the bad event has cursor %v", bad.Cursor)
	}
	got := sink.WaitFor(t, "a", 3)
	if fmt.Sprint(got) != "[1:first 2:good1 3:good2]" {
		t.Fatalf("delivered %v", got)
	}
}

func TestPublishCanceledWhileQueuedIsNotAppended(t *testing.T) {
	g := newGatedLog(t)
	b := New(g, func(*notification.Event) {}, Options{})
	defer b.Close()
	first := holdWriter(t, b, g)
	ctx, cancel := context.WithCancel(context.Background())
	canceled := queue(ctx, b, brokertest.Event("a", "canceled"))
	waitUntil(t, "queued", func() bool { return len(b.queue) == 1 })
	cancel()
	close(g.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled publish: %v", err)
	}
	if _, head, err := b.History(context.Background(), "a", notification.Cursor{}, 10); err != nil || head.Seq != 1 {
		t.Fatalf("head %v %v: the canceled event was appended", head, err)
	}
}

func TestCloseCommitsWhatIsQueued(t *testing.T) {
	g := newGatedLog(t)
	sink := &brokertest.Sink{}
	b := New(g, sink.Handle, Options{})
	if err := b.Subscribe(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	first := holdWriter(t, b, g)
	var results []<-chan error
	for i := 0; i < 3; i++ {
		results = append(results, queue(context.Background(), b, brokertest.Event("a", fmt.Sprint(i))))
		waitUntil(t, "the caller is queued", func() bool { return len(b.queue) == i+1 })
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	waitUntil(t, "Close has begun", b.closed.Load)
	if err := b.Publish(context.Background(), []*notification.Event{brokertest.Event("a", "late")}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish during close: %v", err)
	}
	close(g.gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for i, r := range append(results, first) {
		if err := <-r; err != nil {
			t.Fatalf("publish %d queued before close: %v", i, err)
		}
	}
	if got := sink.Titles("a"); fmt.Sprint(got) != "[1:first 2:0 3:1 4:2]" {
		t.Fatalf("delivered %v", got)
	}
}

func TestPublishRacingCloseNeverHangs(t *testing.T) {
	for round := 0; round < 20; round++ {
		g := newGatedLog(t)
		close(g.gate)
		b := New(g, func(*notification.Event) {}, Options{})
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					err := b.Publish(context.Background(), []*notification.Event{brokertest.Event("a", fmt.Sprint(i, j))})
					if errors.Is(err, broker.ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		_ = b.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(brokertest.WaitTimeout):
			t.Fatal("a publish racing Close did not return")
		}
	}
}

func TestSweepRunsPeriodicallyUntilClose(t *testing.T) {
	g := newGatedLog(t)
	close(g.gate)
	b := New(g, func(*notification.Event) {}, Options{SweepInterval: 5 * time.Millisecond})
	waitUntil(t, "two sweeps ran", func() bool { return g.sweeps.Load() >= 2 })
	_ = b.Close()
	n := g.sweeps.Load()
	time.Sleep(50 * time.Millisecond)
	if g.sweeps.Load() != n {
		t.Fatal("sweeps went on after Close")
	}
}

func TestSubscriptionCounts(t *testing.T) {
	var s subscriptions
	s.init()
	steps := []struct {
		op    string
		user  string
		has   bool
		empty bool
	}{
		{"add", "a", true, false},
		{"add", "a", true, false},
		{"remove", "a", true, false},
		{"remove", "a", false, true},
		{"remove", "a", false, true}, // no debt
		{"add", "a", true, false},
		{"add", "b", true, false},
		{"remove", "a", false, false},
		{"remove", "b", false, true},
	}
	for i, st := range steps {
		if st.op == "add" {
			s.add(st.user)
		} else {
			s.remove(st.user)
		}
		if s.has(st.user) != st.has || s.empty() != st.empty {
			t.Fatalf("step %d (%s %s): has %v empty %v", i, st.op, st.user, s.has(st.user), s.empty())
		}
	}
}
