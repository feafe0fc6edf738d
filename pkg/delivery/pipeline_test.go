package delivery

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/push"
)

// memBroker records what it publishes; fail makes it refuse, before runs
// first.
type memBroker struct {
	mu     sync.Mutex
	events []*notification.Event
	fail   error
	before func()
}

func (b *memBroker) published() []*notification.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*notification.Event(nil), b.events...)
}

func (b *memBroker) Publish(_ context.Context, evs []*notification.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.before != nil {
		b.before()
	}
	if b.fail != nil {
		return b.fail
	}
	b.events = append(b.events, evs...)
	return nil
}

// memKeys is an in-memory idempotency store; while down is set, every
// call fails (Reserve after making its claim, as when the reply is lost).
type memKeys struct {
	mu      sync.Mutex
	keys    map[string][]byte // nil value: reserved
	holders map[string]string
	down    bool
	// onPublish, if set, is called by the test broker before it publishes.
	onPublish func()
}

var errKeysDown = errors.New("keys: connection lost")

func (m *memKeys) Reserve(_ context.Context, key, holder string, _ time.Duration) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.keys[key]; ok {
		if m.down {
			return nil, false, errKeysDown
		}
		return v, false, nil
	}
	m.keys[key] = nil
	if m.holders == nil {
		m.holders = map[string]string{}
	}
	m.holders[key] = holder
	if m.down {
		return nil, false, errKeysDown
	}
	return nil, true, nil
}

func (m *memKeys) Complete(_ context.Context, key string, result []byte, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errKeysDown
	}
	if result == nil {
		result = []byte{}
	}
	m.keys[key] = result
	return nil
}

func (m *memKeys) Release(_ context.Context, key, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errKeysDown
	}
	if v, ok := m.keys[key]; ok && v == nil && m.holders[key] == holder {
		delete(m.keys, key)
	}
	return nil
}

func (m *memKeys) setDown(down bool) {
	m.mu.Lock()
	m.down = down
	m.mu.Unlock()
}

func TestPublishWithKeyHappensOnceAndAnswersWithTheFirstResult(t *testing.T) {
	b := &memBroker{}
	p := New(Options{Broker: b})
	keys := &memKeys{keys: map[string][]byte{}}
	opts := PublishOptions{IdempotencyKey: "k", Keys: keys, Result: func(evs []*notification.Event) ([]byte, error) {
		return []byte(evs[0].ID), nil
	}}
	first, err := p.Send(context.Background(), &notification.Notification{Title: "t"}, []string{"alice", "alice"}, opts)
	if err != nil || first.Suppressed || len(first.Events) != 1 {
		t.Fatalf("first publish: %+v %v, want one event for the one distinct user", first, err)
	}
	again, err := p.Send(context.Background(), &notification.Notification{Title: "t"}, []string{"alice"}, opts)
	if err != nil || !again.Suppressed || string(again.Record) != first.Events[0].ID {
		t.Fatalf("repeat: %+v %v, want suppressed with the first result", again, err)
	}
	if len(b.events) != 1 {
		t.Fatalf("%d events published, want 1", len(b.events))
	}
}

func TestKeyInUseIsInProgress(t *testing.T) {
	p := New(Options{Broker: &memBroker{}})
	keys := &memKeys{keys: map[string][]byte{"k": nil}}
	_, err := p.Send(context.Background(), &notification.Notification{Title: "t"}, []string{"alice"}, PublishOptions{IdempotencyKey: "k", Keys: keys})
	if !errors.Is(err, ErrInProgress) {
		t.Fatalf("err %v, want ErrInProgress", err)
	}
}

// TestFailedPublishUndoesThePushDecisionAndFreesTheKey: nothing of a
// publish that failed stays behind: a retry can do it, and no push goes
// for a notification no session will ever see.
func TestFailedPublishUndoesThePushDecisionAndFreesTheKey(t *testing.T) {
	store := &memPush{devices: map[string]bool{"alice": true}, pending: map[string]push.Pending{}}
	f := NewFallback(sessions{}, store, FallbackOptions{AckTimeout: time.Minute})
	b := &memBroker{fail: errors.New("broker down")}
	p := New(Options{Broker: b, Fallback: f})
	defer p.Close()
	keys := &memKeys{keys: map[string][]byte{}}
	ev := notif(t, "alice", "n1", `{}`)
	if _, err := p.Publish(context.Background(), []*notification.Event{ev}, PublishOptions{IdempotencyKey: "k", Keys: keys}); err == nil {
		t.Fatal("a failed publish returned no error")
	}
	if _, ok := store.get("alice", "n1"); ok {
		t.Fatal("the failed publish left its pending push")
	}
	b.fail = nil
	res, err := p.Publish(context.Background(), []*notification.Event{ev}, PublishOptions{IdempotencyKey: "k", Keys: keys})
	if err != nil || res.Suppressed {
		t.Fatalf("retry: %+v %v, want published", res, err)
	}
	if _, ok := store.get("alice", "n1"); !ok {
		t.Fatal("the retry recorded no pending push")
	}
}

// TestKeyOfAFailedAttemptIsFreedOnceTheStoreAnswers: when the store of
// idempotency keys is unreachable at the moment a publish fails (or the
// claim's own reply is lost), the key is freed in the background once the
// store is back, so a retry is not refused for all of InUse; and a late
// release never frees a newer attempt's claim.
func TestKeyOfAFailedAttemptIsFreedOnceTheStoreAnswers(t *testing.T) {
	ctx := context.Background()
	n := &notification.Notification{Title: "t"}
	cases := []struct {
		name string
		fail func(b *memBroker, keys *memKeys) // makes the first attempt fail
	}{
		{"publish failed, store down at the release", func(b *memBroker, keys *memKeys) {
			b.fail = errors.New("broker down")
			keys.onPublish = func() { keys.setDown(true) }
		}},
		{"claim made, its reply lost", func(b *memBroker, keys *memKeys) { keys.setDown(true) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &memBroker{}
			p := New(Options{Broker: b})
			defer p.Close()
			keys := &memKeys{keys: map[string][]byte{}}
			b.before = func() {
				if keys.onPublish != nil {
					keys.onPublish()
				}
			}
			opts := PublishOptions{IdempotencyKey: "k", Keys: keys, InUse: time.Minute, ResultTTL: time.Hour}
			tc.fail(b, keys)
			if _, err := p.Send(ctx, n, []string{"alice"}, opts); err == nil {
				t.Fatal("the first attempt did not fail")
			}
			b.mu.Lock()
			b.fail, b.before = nil, nil
			b.mu.Unlock()
			keys.setDown(false)
			deadline := time.Now().Add(10 * time.Second)
			for {
				res, err := p.Send(ctx, n, []string{"alice"}, opts)
				if err == nil {
					if res.Suppressed || len(b.published()) != 1 {
						t.Fatalf("retry: %+v, %d published, want one publish", res, len(b.published()))
					}
					break
				}
				if !errors.Is(err, ErrInProgress) || time.Now().After(deadline) {
					t.Fatalf("retry: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestRetryUnderAKeyNamesTheSameNotifications: an attempt whose publish
// went out but answered an error (a lost reply) is retried with the same
// ids, which the broker dedupes by; without a key every send is new.
func TestRetryUnderAKeyNamesTheSameNotifications(t *testing.T) {
	ctx := context.Background()
	b := &memBroker{}
	p := New(Options{Broker: b})
	defer p.Close()
	keys := &memKeys{keys: map[string][]byte{}}
	opts := PublishOptions{IdempotencyKey: "notifications:k", Keys: keys, InUse: time.Minute, ResultTTL: time.Hour}
	n := &notification.Notification{Title: "t"}
	lost := errors.New("reply lost")
	b.before = func() { b.events = append(b.events, nil); b.fail = lost }
	if _, err := p.Send(ctx, n, []string{"alice", "bob"}, opts); !errors.Is(err, lost) {
		t.Fatalf("first attempt: %v", err)
	}
	b.mu.Lock()
	b.before, b.fail, b.events = nil, nil, nil
	b.mu.Unlock()
	first, err := p.Send(ctx, n, []string{"alice", "bob"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range []string{"alice", "bob"} {
		want := notification.DerivedID("ik", "notifications:k", u)
		if ev := first.Events[i]; ev.User != u || ev.ID != want {
			t.Fatalf("event %d: %s %s, want %s %s", i, ev.User, ev.ID, u, want)
		}
	}
	a, _ := p.Send(ctx, n, []string{"alice"}, PublishOptions{})
	c, _ := p.Send(ctx, n, []string{"alice"}, PublishOptions{})
	if a.Events[0].ID == c.Events[0].ID {
		t.Fatal("two sends without a key share an id")
	}
}
