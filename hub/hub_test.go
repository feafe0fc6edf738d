package hub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
	"github.com/heraldhq/herald/pkg/transport/wire"
)

// stubBroker serves History from a fixed list and lets the test dispatch
// live events itself; it stands in for the back-ends, which have their own
// conformance suite.
type stubBroker struct {
	mu      sync.Mutex
	history map[string][]*notification.Event
	epoch   string
	subs    map[string]int
	// onHistory runs before History answers, to inject live traffic
	// exactly while a replay is in progress.
	onHistory func()
}

func newStubBroker() *stubBroker {
	return &stubBroker{history: map[string][]*notification.Event{}, subs: map[string]int{}, epoch: "ep"}
}

func (b *stubBroker) add(user string, n int) []*notification.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*notification.Event
	for i := 0; i < n; i++ {
		seq := uint64(len(b.history[user]) + 1)
		ev, _ := notification.NewEvent(&notification.Notification{ID: fmt.Sprint(user, seq), User: user, Title: fmt.Sprint(seq)})
		ev.Cursor = notification.Cursor{Epoch: b.epoch, Seq: seq}
		b.history[user] = append(b.history[user], ev)
		out = append(out, ev)
	}
	return out
}

func (b *stubBroker) Publish(context.Context, []*notification.Event) error { return nil }
func (b *stubBroker) RegisterHandler(broker.Handler)                       {}
func (b *stubBroker) Subscribe(_ context.Context, u string) error {
	b.mu.Lock()
	b.subs[u]++
	b.mu.Unlock()
	return nil
}
func (b *stubBroker) Unsubscribe(_ context.Context, u string) error {
	b.mu.Lock()
	b.subs[u]--
	b.mu.Unlock()
	return nil
}
func (b *stubBroker) Ready(context.Context) error { return nil }
func (b *stubBroker) Close() error                { return nil }

func (b *stubBroker) History(_ context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	if f := b.onHistory; f != nil {
		b.onHistory = nil
		f()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	all := b.history[user]
	var head notification.Cursor
	if len(all) > 0 {
		head = all[len(all)-1].Cursor
	}
	if since.IsZero() {
		if len(all) > limit {
			all = all[len(all)-limit:]
		}
		return all, head, nil
	}
	if since.Epoch != b.epoch || since.Seq > head.Seq {
		return nil, head, broker.ErrReset
	}
	rest := all[since.Seq:]
	if len(rest) > limit {
		rest = rest[:limit]
	}
	return rest, head, nil
}

// recorder is a transport.Writer that records frames.
type recorder struct {
	mu     sync.Mutex
	frames []string
	closed chan transport.CloseReason
	block  chan struct{} // when set, writes wait on it
}

func newRecorder() *recorder { return &recorder{closed: make(chan transport.CloseReason, 1)} }

func (r *recorder) WriteEvents(deadline time.Time, evs []*notification.Event) error {
	if r.block != nil {
		select {
		case <-r.block:
		case <-time.After(time.Until(deadline)):
			return os.ErrDeadlineExceeded
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		r.frames = append(r.frames, string(wire.WSMessage(ev)))
	}
	return nil
}
func (r *recorder) KeepAlive(time.Time) error { return nil }
func (r *recorder) Close(reason transport.CloseReason) {
	select {
	case r.closed <- reason:
	default:
	}
}

func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.frames...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d frames, want %d: %v", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func notifFrame(ev *notification.Event) string { return string(wire.WSMessage(ev)) }

func TestReplayMergesLiveTrafficWithoutGapOrDuplicate(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{ReplayPage: 3})
	defer h.Shutdown(context.Background())
	old := b.add("alice", 10)
	var live []*notification.Event
	// While the first history page is read, three more events are published
	// and dispatched live; two of them will also be in later pages.
	b.onHistory = func() {
		live = b.add("alice", 3)
		for _, ev := range live {
			h.Dispatch(ev)
		}
	}
	rec := newRecorder()
	s, err := h.Attach(context.Background(), AttachRequest{User: "alice", Transport: "ws", Writer: rec,
		Since: old[3].Cursor, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Detach(s)
	more := b.add("alice", 2)
	for _, ev := range more {
		h.Dispatch(ev)
	}
	got := rec.wait(t, 11)
	var want []string
	for _, ev := range append(append(old[4:], live...), more...) {
		want = append(want, notifFrame(ev))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames:\n got %v\nwant %v", got, want)
	}
}

func TestForeignCursorGetsResetAtHead(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{})
	defer h.Shutdown(context.Background())
	evs := b.add("alice", 2)
	rec := newRecorder()
	s, err := h.Attach(context.Background(), AttachRequest{User: "alice", Writer: rec,
		Since: notification.Cursor{Epoch: "old", Seq: 5}, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Detach(s)
	h.Dispatch(evs[1]) // already covered by the head: dropped
	next := b.add("alice", 1)[0]
	h.Dispatch(next)
	got := rec.wait(t, 2)
	if got[0] != `{"type":"reset","cursor":"ep-2"}` || got[1] != notifFrame(next) || len(got) != 2 {
		t.Fatalf("frames %v", got)
	}
}

func TestNewEpochMidStreamTellsClient(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{})
	defer h.Shutdown(context.Background())
	rec := newRecorder()
	s, _ := h.Attach(context.Background(), AttachRequest{User: "alice", Writer: rec})
	defer h.Detach(s)
	first := b.add("alice", 1)[0]
	h.Dispatch(first)
	b.epoch = "new"
	b.history["alice"] = nil
	second := b.add("alice", 1)[0]
	h.Dispatch(second)
	got := rec.wait(t, 3)
	if got[1] != `{"type":"reset","cursor":""}` || got[2] != notifFrame(second) {
		t.Fatalf("frames %v", got)
	}
}

func TestSlowConsumerIsClosed(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{SessionQueue: 4, WriteTimeout: time.Minute})
	defer h.Shutdown(context.Background())
	slow := newRecorder()
	slow.block = make(chan struct{})
	fast := newRecorder()
	s1, _ := h.Attach(context.Background(), AttachRequest{User: "slow", Writer: slow})
	defer h.Detach(s1)
	s2, _ := h.Attach(context.Background(), AttachRequest{User: "fast", Writer: fast})
	defer h.Detach(s2)
	// Unblocked before the detaches, which wait for the session's writer.
	defer close(slow.block)
	for _, ev := range b.add("slow", 10) {
		h.Dispatch(ev)
	}
	for _, ev := range b.add("fast", 3) {
		h.Dispatch(ev)
	}
	select {
	case r := <-slow.closed:
		if r != transport.CloseSlowConsumer {
			t.Fatalf("closed with %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow consumer not closed")
	}
	fast.wait(t, 3)
}

// TestSlowConsumerIsClosedByQueueBytes: a client that stops reading while
// large notifications arrive is cut off once its queue holds
// SessionQueueBytes, long before it holds SessionQueue frames; one that
// keeps up with the same notifications is not.
func TestSlowConsumerIsClosedByQueueBytes(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{SessionQueue: 1000, SessionQueueBytes: 64 << 10, WriteTimeout: time.Minute})
	defer h.Shutdown(context.Background())
	slow := newRecorder()
	slow.block = make(chan struct{})
	fast := newRecorder()
	s1, _ := h.Attach(context.Background(), AttachRequest{User: "slow", Writer: slow})
	defer h.Detach(s1)
	s2, _ := h.Attach(context.Background(), AttachRequest{User: "fast", Writer: fast})
	defer h.Detach(s2)
	// Unblocked before the detaches, which wait for the session's writer.
	defer close(slow.block)
	big := func(user string, n int) []*notification.Event {
		events := b.add(user, n)
		for _, ev := range events {
			ev.Payload = []byte(`{"body":"` + strings.Repeat("x", 8<<10) + `"}`)
		}
		return events
	}
	for _, ev := range big("slow", 40) { // 40 × 8 KiB: 320 KiB, 40 frames
		h.Dispatch(ev)
	}
	select {
	case r := <-slow.closed:
		if r != transport.CloseSlowConsumer {
			t.Fatalf("closed with %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a session holding 320 KiB of a 64 KiB queue was not closed")
	}
	for i := 0; i < 5; i++ {
		for _, ev := range big("fast", 4) {
			h.Dispatch(ev)
		}
		fast.wait(t, 4*(i+1))
	}
}

func TestLastSessionUnsubscribes(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{})
	defer h.Shutdown(context.Background())
	s1, _ := h.Attach(context.Background(), AttachRequest{User: "a", Writer: newRecorder()})
	s2, _ := h.Attach(context.Background(), AttachRequest{User: "a", Writer: newRecorder()})
	if b.subs["a"] != 1 || h.LocalSessions("a") != 2 {
		t.Fatalf("subs %d sessions %d", b.subs["a"], h.LocalSessions("a"))
	}
	h.Detach(s1)
	h.Detach(s1) // idempotent
	if b.subs["a"] != 1 {
		t.Fatalf("unsubscribed while a session remains")
	}
	h.Detach(s2)
	if b.subs["a"] != 0 || h.LocalSessions("a") != 0 {
		t.Fatalf("subs %d after last session left", b.subs["a"])
	}
}

func TestAttachAfterShutdownFails(t *testing.T) {
	h := New(newStubBroker(), nil, Options{})
	rec := newRecorder()
	s, _ := h.Attach(context.Background(), AttachRequest{User: "a", Writer: rec})
	go func() {
		<-rec.closed
		h.Detach(s)
	}()
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Attach(context.Background(), AttachRequest{User: "a", Writer: newRecorder()}); !errors.Is(err, ErrClosing) {
		t.Fatalf("err %v", err)
	}
}

// discard is a transport.Writer that drops frames, for benchmarks.
type discard struct{}

func (discard) WriteEvents(time.Time, []*notification.Event) error { return nil }
func (discard) KeepAlive(time.Time) error                          { return nil }
func (discard) Close(transport.CloseReason)                        {}

// tryDiscard is a discard whose socket always takes the frames at once.
type tryDiscard struct{ discard }

func (tryDiscard) TryWriteEvents([]*notification.Event) (bool, error) { return true, nil }

// BenchmarkDispatch measures the fan-out path for one event to one user
// with several sessions, written by a goroutine per batch (a transport
// that cannot write without waiting) or by the writer pool.
func BenchmarkDispatch(b *testing.B) {
	for _, w := range []struct {
		name string
		w    transport.Writer
	}{{"goroutine", discard{}}, {"pool", tryDiscard{}}} {
		for _, sessions := range []int{1, 4} {
			b.Run(fmt.Sprintf("writer=%s/sessions=%d", w.name, sessions), func(b *testing.B) {
				sb := newStubBroker()
				h := New(sb, nil, Options{SessionQueue: 1 << 20})
				defer h.Shutdown(context.Background())
				for i := 0; i < sessions; i++ {
					s, _ := h.Attach(context.Background(), AttachRequest{User: "u", Writer: w.w})
					defer h.Detach(s)
				}
				ev, _ := notification.NewEvent(&notification.Notification{ID: "x", User: "u", Title: "t"})
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ev.Cursor = notification.Cursor{Epoch: "ep", Seq: uint64(i + 1)}
					h.Dispatch(ev)
				}
				b.ReportMetric(float64(b.N*sessions)/b.Elapsed().Seconds(), "frames/s")
			})
		}
	}
}

func TestReserveHoldsSubscriptionUntilReleased(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{})
	defer h.Shutdown(context.Background())
	release, err := h.Reserve(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if b.subs["a"] != 1 {
		t.Fatalf("not subscribed after Reserve: %d", b.subs["a"])
	}
	s, _ := h.Attach(context.Background(), AttachRequest{User: "a", Writer: newRecorder()})
	release()
	release() // idempotent
	if b.subs["a"] != 1 {
		t.Fatalf("release with a session attached changed subscription: %d", b.subs["a"])
	}
	h.Detach(s)
	if b.subs["a"] != 0 {
		t.Fatalf("still subscribed: %d", b.subs["a"])
	}
	release2, _ := h.Reserve(context.Background(), "b")
	release2()
	if b.subs["b"] != 0 {
		t.Fatalf("reservation without session left a subscription: %d", b.subs["b"])
	}
}

func TestExpiredTokenEndsSession(t *testing.T) {
	h := New(newStubBroker(), nil, Options{KeepAlive: 160 * time.Millisecond})
	defer h.Shutdown(context.Background())
	rec := newRecorder()
	s, _ := h.Attach(context.Background(), AttachRequest{User: "a", Writer: rec, Expires: time.Now().Add(100 * time.Millisecond)})
	defer h.Detach(s)
	select {
	case r := <-rec.closed:
		if r != transport.CloseTokenExpired {
			t.Fatalf("closed with %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session outlived its token")
	}
}

func TestPingWheelVisitsEverySessionOncePerRound(t *testing.T) {
	for _, slices := range []int{1, 3, 20} {
		t.Run(fmt.Sprint(slices), func(t *testing.T) {
			h := New(newStubBroker(), nil, Options{})
			defer h.Shutdown(context.Background())
			const users = 700
			all := map[*Session]bool{}
			for i := range users {
				for range 1 + i%3 {
					s, err := h.Attach(context.Background(), AttachRequest{User: fmt.Sprint("u", i), Writer: discard{}})
					if err != nil {
						t.Fatal(err)
					}
					all[s] = false
				}
			}
			defer func() {
				for s := range all {
					h.Detach(s)
				}
			}()
			w := pingWheel{hub: h, slices: slices}
			for round := range 2 {
				seen := map[*Session]int{}
				for range shardCount {
					largest := 0
					for i := range slices {
						part := w.turn()
						if i == 0 {
							largest = len(w.batch)
						}
						// Parts of one shard differ by at most one session.
						if lo, hi := largest/slices, (largest+slices-1)/slices; len(part) < lo || len(part) > hi {
							t.Fatalf("round %d: part of %d sessions from a shard of %d in %d slices", round, len(part), largest, slices)
						}
						for _, s := range part {
							seen[s]++
						}
					}
				}
				if len(seen) != len(all) {
					t.Fatalf("round %d: visited %d of %d sessions", round, len(seen), len(all))
				}
				for s, n := range seen {
					if n != 1 || !slicesHas(all, s) {
						t.Fatalf("round %d: session of %s visited %d times", round, s.user, n)
					}
				}
			}
		})
	}
}

func slicesHas(m map[*Session]bool, s *Session) bool { _, ok := m[s]; return ok }

func TestSessionBeyondTheCapClosesTheOldest(t *testing.T) {
	h := New(newStubBroker(), nil, Options{MaxSessionsPerUser: 2})
	ctx := context.Background()
	var recs []*recorder
	for range 3 {
		r := newRecorder()
		recs = append(recs, r)
		if _, err := h.Attach(ctx, AttachRequest{User: "alice", Writer: r}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Attach(ctx, AttachRequest{User: "bob", Writer: newRecorder()}); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-recs[0].closed:
		if reason != transport.CloseTooManySessions {
			t.Fatalf("oldest closed with %v", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the oldest session was not closed")
	}
	for _, r := range recs[1:] {
		select {
		case reason := <-r.closed:
			t.Fatalf("a newer session was closed: %v", reason)
		default:
		}
	}
	if n := h.LocalSessions("alice"); n != 2 {
		t.Fatalf("alice has %d sessions, want the cap of 2", n)
	}
	if n := h.LocalSessions("bob"); n != 1 {
		t.Fatalf("bob has %d sessions", n)
	}
}
