package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/heraldhq/herald/pkg/webhook"
)

// memQueue is an Enqueuer that remembers keys; fail makes it refuse.
type memQueue struct {
	items map[string][]byte
	fail  error
}

func (q *memQueue) Enqueue(_ context.Context, key string, body []byte) (bool, error) {
	if q.fail != nil {
		return false, q.fail
	}
	if _, ok := q.items[key]; ok {
		return true, nil
	}
	q.items[key] = body
	return false, nil
}

func TestAcceptQueuesWhatWorkersActOn(t *testing.T) {
	r := newRig(t, Options{Events: map[string]map[string]bool{"talkjs": {"message.read": false}}})
	q := &memQueue{items: map[string][]byte{}}
	ctx := context.Background()
	body := []byte(`{"some":"body"}`)

	off := &webhook.Event{Provider: "talkjs", Type: "message.read", Kind: webhook.KindMessage}
	if got, err := r.p.Accept(ctx, q, off, body); err != nil || got != Ignored {
		t.Fatalf("toggled-off event: %q %v, want ignored", got, err)
	}
	membership := &webhook.Event{Provider: "talkjs", Type: "message.read", Kind: webhook.KindMembership}
	if got, err := r.p.Accept(ctx, q, membership, []byte(`{"members":1}`)); err != nil || got != Accepted {
		t.Fatalf("membership of a toggled-off type: %q %v, want accepted", got, err)
	}

	ev := message("", "c1", "bob", "hi", "alice")
	if got, err := r.p.Accept(ctx, q, ev, body); err != nil || got != Accepted {
		t.Fatalf("message: %q %v, want accepted", got, err)
	}
	want := "sha256:" + webhook.BodyID(body)
	if ev.ID != want {
		t.Fatalf("event id %q, want the body's hash %q", ev.ID, want)
	}
	var queued webhook.Event
	if err := json.Unmarshal(q.items["talkjs:"+want], &queued); err != nil || queued.Text != "hi" {
		t.Fatalf("queued item %s (%v), want the event", q.items["talkjs:"+want], err)
	}
	again := message("", "c1", "bob", "hi", "alice")
	if got, err := r.p.Accept(ctx, q, again, body); err != nil || got != Duplicate {
		t.Fatalf("redelivery: %q %v, want duplicate", got, err)
	}

	q.fail = errors.New("disk full")
	if _, err := r.p.Accept(ctx, q, message("2", "c1", "bob", "hi", "alice"), body); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("queue refusing: %v, want ErrNotQueued", err)
	}
}

func TestAcceptIgnoresEverythingWhenDisabled(t *testing.T) {
	r := newRig(t, Options{Disabled: true})
	q := &memQueue{items: map[string][]byte{}}
	if got, err := r.p.Accept(context.Background(), q, message("1", "c1", "bob", "hi", "alice"), nil); err != nil || got != Ignored || len(q.items) != 0 {
		t.Fatalf("%q %v, %d queued; want ignored and nothing queued", got, err, len(q.items))
	}
}
