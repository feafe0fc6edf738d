package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/store/boltstore"
)

// sessions is a Presence: users' live session counts.
type sessions map[string]int

func (s sessions) Presence(_ context.Context, user string) (int, error) { return s[user], nil }

// memPush is an in-memory PushScheduler.
type memPush struct {
	mu      sync.Mutex
	devices map[string]bool
	pending map[string]push.Pending
}

func (m *memPush) HasDevices(_ context.Context, users []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, u := range users {
		if m.devices[u] {
			out[u] = true
		}
	}
	return out, nil
}

func (m *memPush) SchedulePush(_ context.Context, ps []push.Pending) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		m.pending[p.Key()] = p
	}
	return nil
}

func (m *memPush) CancelPush(_ context.Context, keys []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.pending, k)
	}
	return nil
}

func (m *memPush) get(user, id string) (push.Pending, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pending[push.PendingKey(user, id)]
	return p, ok
}

func notif(t testing.TB, user, id string, data string) *notification.Event {
	ev, err := notification.NewEvent(&notification.Notification{ID: id, User: user, Title: "t", Data: []byte(data), CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestFallbackDecisions(t *testing.T) {
	h := sessions{"online": 1} // a live session
	store := &memPush{devices: map[string]bool{"offline": true, "online": true}, pending: map[string]push.Pending{}}
	f := NewFallback(h, store, FallbackOptions{AckTimeout: time.Minute})
	defer f.Close()
	events := []*notification.Event{
		notif(t, "offline", "n1", `{}`),
		notif(t, "online", "n2", `{}`),
		notif(t, "nodevice", "n3", `{}`),
		notif(t, "offline", "n4", `{"quiet":true}`),
	}
	retract, _ := notification.NewRetractEvent("online", "n2", "c1", time.Now())
	events = append(events, retract)
	if err := f.Schedule(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if p, ok := store.get("offline", "n1"); !ok || p.Due.After(time.Now()) {
		t.Fatalf("offline user: %+v %v, want a push due at once", p, ok)
	}
	// n2 went to a user with a live session, then was retracted: the
	// retraction replaced its pending push and goes at once.
	if p, ok := store.get("online", "n2"); !ok || p.Due.After(time.Now()) || !strings.Contains(string(p.Message), `"retract":true`) {
		t.Fatalf("online user: %+v %v, want a retraction push due at once", p, ok)
	}
	if _, ok := store.get("nodevice", "n3"); ok {
		t.Fatal("a user without devices got a pending push")
	}
	if _, ok := store.get("offline", "n4"); ok {
		t.Fatal("a quiet notification got a pending push")
	}
	f.Acked("offline", []string{"n1"})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := store.get("offline", "n1"); !ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("an ack did not cancel the pending push")
}

func TestFallbackWaitsForAckWhenOnline(t *testing.T) {
	h := sessions{"online": 1} // a live session
	store := &memPush{devices: map[string]bool{"online": true}, pending: map[string]push.Pending{}}
	f := NewFallback(h, store, FallbackOptions{AckTimeout: time.Minute})
	defer f.Close()
	start := time.Now()
	if err := f.Schedule(context.Background(), []*notification.Event{notif(t, "online", "n1", `{}`)}); err != nil {
		t.Fatal(err)
	}
	p, ok := store.get("online", "n1")
	if !ok || p.Due.Before(start.Add(time.Minute)) {
		t.Fatalf("pending %+v %v, want due after the ack timeout", p, ok)
	}
}

// BenchmarkFallbackSchedule is the cost the fallback decision adds to a
// publish of one notification, against the embedded store: users without
// devices (the common case), and with devices and no session (a pending
// push is written).
func BenchmarkFallbackSchedule(b *testing.B) {
	for _, withDevice := range []bool{false, true} {
		b.Run(fmt.Sprintf("device=%v", withDevice), func(b *testing.B) {
			st, err := boltstore.Open(filepath.Join(b.TempDir(), "b.db"), boltstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			h := sessions{}
			if withDevice {
				if _, err := st.RegisterDevice(context.Background(), &push.Device{ID: "d", User: "u", Platform: push.PlatformFCM, Token: "t"}, 0); err != nil {
					b.Fatal(err)
				}
			}
			f := NewFallback(h, st, FallbackOptions{AckTimeout: time.Second})
			defer f.Close()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					ev := notif(b, "u", fmt.Sprint("n", i, time.Now().UnixNano()), `{}`)
					if err := f.Schedule(context.Background(), []*notification.Event{ev}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// gatedPush is a memPush whose CancelPush waits for open to be closed, as a
// store falling behind would; entered is signalled on the first call.
type gatedPush struct {
	*memPush
	entered chan struct{}
	open    chan struct{}
	once    sync.Once

	mu        sync.Mutex
	cancelled map[string]int // keys cancelled, by user
}

func (g *gatedPush) CancelPush(ctx context.Context, keys []string) error {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	g.mu.Lock()
	for _, k := range keys {
		user, _, _ := strings.Cut(k, "\x00")
		g.cancelled[user]++
	}
	g.mu.Unlock()
	return g.memPush.CancelPush(ctx, keys)
}

// TestAckFloodOfOneUserDoesNotCancelAnothersAck is the reported attack:
// mallory acks a hundred thousand made-up ids while the store is busy;
// bob's ack of a real notification must still cancel bob's push, and
// mallory loses only her own acks beyond the per-user cap.
func TestAckFloodOfOneUserDoesNotCancelAnothersAck(t *testing.T) {
	h := sessions{"bob": 1} // a live session
	mem := &memPush{devices: map[string]bool{"bob": true}, pending: map[string]push.Pending{}}
	store := &gatedPush{memPush: mem, entered: make(chan struct{}), open: make(chan struct{}), cancelled: map[string]int{}}
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	f := NewFallback(h, store, FallbackOptions{AckTimeout: time.Minute, MaxPendingAcks: 2048, WarnEvery: time.Hour, Logger: log})
	defer f.Close()
	if err := f.Schedule(context.Background(), []*notification.Event{notif(t, "bob", "real", `{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := mem.get("bob", "real"); !ok {
		t.Fatal("bob's push was not scheduled")
	}
	f.Acked("mallory", []string{"first"})
	<-store.entered // the cancel loop is now stuck in the store
	const flood = 100_000
	ids := make([]string, 1000)
	for i := 0; i < flood; i += len(ids) {
		for j := range ids {
			ids[j] = fmt.Sprint("fake-", i+j)
		}
		f.Acked("mallory", ids)
	}
	f.Acked("bob", []string{"real"})
	close(store.open)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := mem.get("bob", "real"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob acked, yet his pending push was not cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.Close() // waits for everything in hand
	store.mu.Lock()
	got := store.cancelled["mallory"]
	store.mu.Unlock()
	if got != 1+2048 {
		t.Fatalf("mallory's cancellations applied = %d, want her first ack and the %d of her cap", got, 2048)
	}
	if d := counterValue(f.opts.AcksDropped); d != flood-2048 {
		t.Fatalf("acks dropped = %v, want %d", d, flood-2048)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings logged, want 1 for the whole flood:\n%s", n, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestCancelTaggedCancelsOnlyTheTag: a retraction by tag cancels the
// pending pushes of that tag's notifications and leaves the others.
func TestCancelTaggedCancelsOnlyTheTag(t *testing.T) {
	store := &memPush{devices: map[string]bool{"u": true}, pending: map[string]push.Pending{}}
	f := NewFallback(sessions{}, store, FallbackOptions{AckTimeout: time.Minute})
	defer f.Close()
	tagged := func(id, tag string) *notification.Event {
		ev := notif(t, "u", id, `{}`)
		ev.Tag = tag
		return ev
	}
	events := []*notification.Event{tagged("n1", "c1"), tagged("n2", "c2"), tagged("n3", "c1")}
	if err := f.Schedule(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if err := f.CancelTagged(context.Background(), events, "c1"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"n1": false, "n2": true, "n3": false} {
		if _, ok := store.get("u", id); ok != want {
			t.Errorf("%s pending: %v, want %v", id, ok, want)
		}
	}
}
