package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/store/boltstore"
)

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
	h := New(newStubBroker(), nil, Options{})
	store := &memPush{devices: map[string]bool{"offline": true, "online": true}, pending: map[string]push.Pending{}}
	f := NewFallback(h, store, FallbackOptions{AckTimeout: time.Minute})
	defer f.Close()
	if _, err := h.Attach(context.Background(), AttachRequest{User: "online", Writer: newRecorder()}); err != nil {
		t.Fatal(err)
	}
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
	h := New(newStubBroker(), nil, Options{})
	store := &memPush{devices: map[string]bool{"online": true}, pending: map[string]push.Pending{}}
	f := NewFallback(h, store, FallbackOptions{AckTimeout: time.Minute})
	defer f.Close()
	if _, err := h.Attach(context.Background(), AttachRequest{User: "online", Writer: newRecorder()}); err != nil {
		t.Fatal(err)
	}
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
			h := New(newStubBroker(), nil, Options{})
			if withDevice {
				if _, err := st.RegisterDevice(context.Background(), &push.Device{ID: "d", User: "u", Platform: push.PlatformFCM, Token: "t"}); err != nil {
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
