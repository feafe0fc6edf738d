package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/pkg/webhook"
)

// What Accept did with an event, as the webhook's answer says it.
const (
	Accepted  = "accepted"  // queued for a worker
	Duplicate = "duplicate" // queued before under the same provider and id
	Ignored   = "ignored"   // nothing Herald acts on: not queued
)

// Enqueuer durably stores an item before it returns (queue.Queue).
type Enqueuer interface {
	Enqueue(ctx context.Context, key string, body []byte) (dup bool, err error)
}

// ErrNotQueued means the queue did not take the event: the provider
// should deliver it again.
var ErrNotQueued = errors.New("ingest: event not queued")

// Accept decides what becomes of ev, verified and parsed from body (its
// Provider set): an event nothing would notify of is ignored, unless it
// carries membership, which workers apply; an event without an id is
// named by the hash of its body, so a redelivery of it is a duplicate;
// the queue item is the event encoded afresh, keeping none of body. An
// error is either ErrNotQueued or the event failing to encode.
func (p *Processor) Accept(ctx context.Context, q Enqueuer, ev *webhook.Event, body []byte) (string, error) {
	if ev.Kind == webhook.KindIgnore || (ev.Kind != webhook.KindMembership && ev.Members == nil && !p.Enabled(ev.Provider, ev.Type)) {
		return Ignored, nil
	}
	if ev.ID == "" {
		ev.ID = "sha256:" + webhook.BodyID(body)
	}
	item, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	dup, err := q.Enqueue(ctx, ev.Provider+":"+ev.ID, item)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotQueued, err)
	}
	if dup {
		return Duplicate, nil
	}
	return Accepted, nil
}
