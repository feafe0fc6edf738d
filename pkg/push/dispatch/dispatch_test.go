package dispatch

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/push"
)

// memStore holds devices and hands out each pending push once.
type memStore struct {
	mu      sync.Mutex
	devices []push.Device
	pending []push.Pending
	done    []string
}

func (s *memStore) ClaimPush(_ context.Context, _ time.Time, max int, _ time.Duration) ([]push.Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(max, len(s.pending))
	out := s.pending[:n:n]
	s.pending = s.pending[n:]
	return out, nil
}

func (s *memStore) DonePush(_ context.Context, keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = append(s.done, keys...)
	return nil
}

func (s *memStore) ReleasePush([]string) {}

func (s *memStore) Devices(context.Context, string) ([]push.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.devices), nil
}

func (s *memStore) DeleteDevices(context.Context, string, []string, string) (int, error) {
	return 0, nil
}

// recorder is a sender that fails for the devices in fail.
type recorder struct {
	platform string
	fail     map[string]bool
	mu       sync.Mutex
	got      map[string]push.Message // by device id
}

func (r *recorder) Platform() string { return r.platform }

func (r *recorder) Send(_ context.Context, d *push.Device, m *push.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string]push.Message{}
	}
	key := d.ID
	if key == "" {
		key = "extra"
	}
	r.got[key] = *m
	if r.fail[d.ID] {
		return &push.Error{Outcome: push.Failed, Status: 400}
	}
	return nil
}

func pending(t *testing.T, m push.Message) push.Pending {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return push.Pending{User: "alice", ID: m.ID, Message: b}
}

// TestDeliveredBadgeAndTargetedPushes: each push carries the unread total;
// a notification's accepted devices are reported, failed ones not; a
// push naming its devices reaches those (and the operator's webhook) only,
// and being silent reports nothing.
func TestDeliveredBadgeAndTargetedPushes(t *testing.T) {
	st := &memStore{devices: []push.Device{
		{ID: "d1", User: "alice", Platform: "fcm"}, {ID: "d2", User: "alice", Platform: "fcm"}, {ID: "d3", User: "alice", Platform: "fcm"},
	}}
	fcm := &recorder{platform: "fcm", fail: map[string]bool{"d3": true}}
	hook := &recorder{platform: "webhook"}
	var mu sync.Mutex
	delivered := map[string][]string{}
	d := New(st, nil, Options{
		Senders: map[string]push.Sender{"fcm": fcm, "webhook": hook},
		Extra:   []push.Device{{Platform: "webhook"}},
		Badge:   func(context.Context, *push.Message) (int, error) { return 7, nil },
		Delivered: func(_ context.Context, user, id string, devices []string) {
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(devices)
			delivered[user+"/"+id] = devices
		},
	})

	n1 := pending(t, push.Message{ID: "n1", User: "alice", Title: "hi"})
	d.send(context.Background(), &n1)
	if got := delivered["alice/n1"]; !slices.Equal(got, []string{"d1", "d2"}) {
		t.Errorf("delivered to %v, want [d1 d2] (d3 failed, the webhook is no device)", got)
	}
	for _, dev := range []string{"d1", "d2", "d3"} {
		if b := fcm.got[dev].Badge; b == nil || *b != 7 {
			t.Errorf("%s: badge %v, want 7", dev, b)
		}
	}

	clear(fcm.got)
	clear(hook.got)
	zero := 0
	p := pending(t, push.Message{ID: "read:1", User: "alice", Clear: []string{"n1"}, Badge: &zero, Devices: []string{"d2"}})
	d.send(context.Background(), &p)
	if len(fcm.got) != 1 || fcm.got["d2"].Badge == nil || *fcm.got["d2"].Badge != 0 {
		t.Errorf("clearing push reached %v, want d2 only with its own badge 0", fcm.got)
	}
	if _, ok := hook.got["extra"]; !ok {
		t.Error("the operator's webhook did not get the clearing push")
	}
	if _, ok := delivered["alice/read:1"]; ok {
		t.Error("a clearing push was reported as delivered")
	}
	if want := []string{push.PendingKey("alice", "n1"), p.Key()}; !slices.Equal(st.done, want) {
		t.Errorf("done %q, want %q", st.done, want)
	}
}
