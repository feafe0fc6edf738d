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

// memBroker records what it publishes; fail makes it refuse.
type memBroker struct {
	mu     sync.Mutex
	events []*notification.Event
	fail   error
}

func (b *memBroker) Publish(_ context.Context, evs []*notification.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.events = append(b.events, evs...)
	return nil
}

// memKeys is an in-memory idempotency store.
type memKeys struct {
	mu   sync.Mutex
	keys map[string][]byte // nil value: reserved
}

func (m *memKeys) Reserve(_ context.Context, key string, _ time.Duration) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.keys[key]; ok {
		return v, false, nil
	}
	m.keys[key] = nil
	return nil, true, nil
}

func (m *memKeys) Complete(_ context.Context, key string, result []byte, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if result == nil {
		result = []byte{}
	}
	m.keys[key] = result
	return nil
}

func (m *memKeys) Release(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, key)
	return nil
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
