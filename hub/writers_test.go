package hub

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
)

// tryRecorder is a recorder whose socket, on a write without waiting, takes
// all, part or none of a batch as the test's script says; like a real
// transport it keeps what it did not take and sends that first on the next
// WriteEvents.
type tryRecorder struct {
	*recorder
	mu      sync.Mutex
	script  func(call int) (take int, err error) // take < 0: all
	calls   int
	rest    []*notification.Event
	tries   int
	waiting int // WriteEvents calls
}

func (r *tryRecorder) TryWriteEvents(evs []*notification.Event) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if len(r.rest) > 0 {
		r.rest = append(r.rest, evs...)
		return false, nil
	}
	take, err := r.script(r.calls)
	r.calls++
	if err != nil {
		return false, err
	}
	if take < 0 || take >= len(evs) {
		return true, r.recorder.WriteEvents(time.Now().Add(time.Second), evs)
	}
	if err := r.recorder.WriteEvents(time.Now().Add(time.Second), evs[:take]); err != nil {
		return false, err
	}
	r.rest = append(r.rest, evs[take:]...)
	return false, nil
}

func (r *tryRecorder) WriteEvents(deadline time.Time, evs []*notification.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting++
	all := append(r.rest, evs...)
	r.rest = nil
	return r.recorder.WriteEvents(deadline, all)
}

func (r *tryRecorder) counts() (tries, waiting int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries, r.waiting
}

func TestPoolWritesInOrderThroughPartialWrites(t *testing.T) {
	cases := []struct {
		name   string
		script func(call int) (int, error)
		slow   bool // some batches must take the waiting path (any may: a batch longer than the pool writes)
	}{
		{"socket takes all", func(int) (int, error) { return -1, nil }, false},
		// The first write of each session finds the socket or the
		// connection unavailable, so every session takes the waiting path.
		{"socket full every third write", func(c int) (int, error) {
			if c%3 == 0 {
				return 0, nil
			}
			return -1, nil
		}, true},
		{"socket takes one frame at a time", func(c int) (int, error) { return min(c, 1), nil }, true},
		{"connection busy every other write", func(c int) (int, error) {
			if c%2 == 0 {
				return 0, transport.ErrWouldBlock
			}
			return -1, nil
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newStubBroker()
			h := New(b, nil, Options{SessionQueue: 1 << 16})
			defer h.Shutdown(context.Background())
			const users, per = 8, 300
			recs := make([]*tryRecorder, users)
			var want [users][]string
			for u := range users {
				recs[u] = &tryRecorder{recorder: newRecorder(), script: tc.script}
				s, err := h.Attach(context.Background(), AttachRequest{User: fmt.Sprint("u", u), Writer: recs[u]})
				if err != nil {
					t.Fatal(err)
				}
				defer h.Detach(s)
			}
			// Dispatch from several goroutines, as the brokers do, each
			// user's events in order from one of them.
			var wg sync.WaitGroup
			for u := range users {
				evs := b.add(fmt.Sprint("u", u), per)
				for _, ev := range evs {
					want[u] = append(want[u], notifFrame(ev))
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i, ev := range evs {
						h.Dispatch(ev)
						if i%50 == 0 {
							time.Sleep(time.Millisecond) // let the writers drain between bursts
						}
					}
				}()
			}
			wg.Wait()
			for u, r := range recs {
				got := r.wait(t, per)
				if len(got) != per {
					t.Fatalf("user %d: %d frames, want %d", u, len(got), per)
				}
				for i := range got {
					if got[i] != want[u][i] {
						t.Fatalf("user %d frame %d out of order", u, i)
					}
				}
				tries, waiting := r.counts()
				if tries == 0 {
					t.Fatalf("user %d: the pool never wrote", u)
				}
				if tc.slow && waiting == 0 {
					t.Fatalf("user %d: no waiting write, though the socket did not take every batch", u)
				}
			}
		})
	}
}

func TestPoolWriteErrorClosesSession(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{})
	defer h.Shutdown(context.Background())
	rec := &tryRecorder{recorder: newRecorder(), script: func(int) (int, error) { return 0, errors.New("broken pipe") }}
	s, err := h.Attach(context.Background(), AttachRequest{User: "a", Writer: rec})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range b.add("a", 1) {
		h.Dispatch(ev)
	}
	select {
	case r := <-rec.closed:
		if r != transport.CloseWriteFailed {
			t.Fatalf("closed with %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session not closed after a failed write")
	}
	done := make(chan struct{})
	go func() { h.Detach(s); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Detach waits for a writer that never stops")
	}
}

func TestPoolLeavesLongBatchesToTheSessionsWriter(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{})
	defer h.Shutdown(context.Background())
	entered, gate := make(chan struct{}), make(chan struct{})
	rec := &tryRecorder{recorder: newRecorder(), script: func(call int) (int, error) {
		if call == 0 {
			close(entered)
			<-gate // the socket is slow while a long batch queues up
		}
		return -1, nil
	}}
	s, err := h.Attach(context.Background(), AttachRequest{User: "a", Writer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Detach(s)
	evs := b.add("a", 1+maxTryBatch*2)
	h.Dispatch(evs[0])
	<-entered
	for _, ev := range evs[1:] {
		h.Dispatch(ev)
	}
	close(gate)
	got := rec.wait(t, len(evs))
	for i, ev := range evs {
		if got[i] != notifFrame(ev) {
			t.Fatalf("frame %d out of order", i)
		}
	}
	if tries, waiting := rec.counts(); tries != 1 || waiting != 1 {
		t.Fatalf("%d writes from the pool and %d waiting, want the long batch in one waiting write", tries, waiting)
	}
}

// countingWriter counts frames; with try set it also writes without
// waiting, so the hub's pool writes it.
type countingWriter struct {
	discard
	n *atomic.Int64
}

func (w countingWriter) WriteEvents(_ time.Time, evs []*notification.Event) error {
	w.n.Add(int64(len(evs)))
	return nil
}

type tryCountingWriter struct{ countingWriter }

func (w tryCountingWriter) TryWriteEvents(evs []*notification.Event) (bool, error) {
	w.n.Add(int64(len(evs)))
	return true, nil
}

// BenchmarkFanout measures one event to each of 10,000 users, until every
// frame is written: the cost per frame of starting a writer goroutine for
// each session against handing the sessions to the pool.
func BenchmarkFanout(b *testing.B) {
	const users = 10000
	for _, pool := range []bool{false, true} {
		b.Run(fmt.Sprintf("pool=%v", pool), func(b *testing.B) {
			sb := newStubBroker()
			h := New(sb, nil, Options{})
			defer h.Shutdown(context.Background())
			var n atomic.Int64
			evs := make([]*notification.Event, users)
			for i := range users {
				user := fmt.Sprint("u", i)
				var w transport.Writer = countingWriter{n: &n}
				if pool {
					w = tryCountingWriter{countingWriter{n: &n}}
				}
				s, _ := h.Attach(context.Background(), AttachRequest{User: user, Writer: w})
				defer h.Detach(s)
				evs[i], _ = notification.NewEvent(&notification.Notification{ID: "x", User: user, Title: "t"})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				want := n.Load() + users
				for _, ev := range evs {
					ev.Cursor = notification.Cursor{Epoch: "ep", Seq: uint64(i + 1)}
					h.Dispatch(ev)
				}
				for n.Load() < want {
					runtime.Gosched()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*users), "ns/frame")
		})
	}
}

// busyOnce is a tryRecorder whose first write without waiting finds the
// connection busy, while more events for the session arrive.
type busyOnce struct {
	*tryRecorder
	during func()
	once   sync.Once
}

func (b *busyOnce) TryWriteEvents(evs []*notification.Event) (all bool, err error) {
	busy := false
	b.once.Do(func() {
		b.during()
		busy = true
	})
	if busy {
		return false, transport.ErrWouldBlock
	}
	return b.tryRecorder.TryWriteEvents(evs)
}

func TestPoolKeepsOrderWhenTheConnectionIsBusy(t *testing.T) {
	b := newStubBroker()
	h := New(b, nil, Options{})
	defer h.Shutdown(context.Background())
	evs := b.add("a", 6)
	rec := &busyOnce{tryRecorder: &tryRecorder{recorder: newRecorder(), script: func(int) (int, error) { return -1, nil }}}
	rec.during = func() {
		for _, ev := range evs[3:] {
			h.Dispatch(ev)
		}
	}
	s, err := h.Attach(context.Background(), AttachRequest{User: "a", Writer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Detach(s)
	// The first three go out as one batch, which the busy connection turns
	// back while the last three queue behind it.
	s.mu.Lock()
	for _, ev := range evs[:3] {
		s.enqueueLocked(ev)
	}
	s.mu.Unlock()
	got := rec.wait(t, len(evs))
	for i, ev := range evs {
		if got[i] != notifFrame(ev) {
			t.Fatalf("frame %d out of order: %s", i, got[i])
		}
	}
}
