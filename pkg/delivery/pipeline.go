// Package delivery owns the way a notification goes out, whether an API
// request or a webhook worker made it (Pipeline): its idempotency key
// claimed, its push decision recorded before it is published (Fallback),
// the publish to the broker, the decision undone when that fails, the
// key's result recorded; and the acks that cancel pending pushes. It knows
// nothing of HTTP or of sessions: the hub tells it of acks through its own
// interface, and it asks presence how many sessions a user has.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/pkg/idempotency"
	"github.com/heraldhq/herald/pkg/notification"
)

// Publisher appends events to their users' histories and fans them out:
// the broker.
type Publisher interface {
	Publish(ctx context.Context, events []*notification.Event) error
}

// ErrInProgress means another caller holds the idempotency key now: its
// publish has not finished (or died less than InUse ago).
var ErrInProgress = errors.New("delivery: idempotency key in use")

// Options configure a Pipeline.
type Options struct {
	Broker Publisher
	// Fallback makes the push decision of each notification; nil when
	// push is off. The pipeline closes it.
	Fallback *Fallback
	// Metrics registers herald_notifications_published_total (nil: not
	// registered).
	Metrics prometheus.Registerer
}

// Pipeline is the one way notifications go out, whether an API request
// or a webhook worker made them: idempotency key claimed, push decision
// recorded, events published, the decision undone if the publish failed,
// the key's result recorded. It is safe for concurrent use.
type Pipeline struct {
	broker    Publisher
	fallback  *Fallback
	published prometheus.Counter
	releases  *releaser
}

// New returns a pipeline publishing to opts.Broker.
func New(opts Options) *Pipeline {
	p := &Pipeline{broker: opts.Broker, fallback: opts.Fallback, releases: newReleaser(),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_notifications_published_total", Help: "Notifications appended to history and published.",
		})}
	if opts.Metrics != nil {
		opts.Metrics.MustRegister(p.published)
	}
	return p
}

// PublishOptions alter one publish. As in centrifuge, where a publish's
// options carry its idempotency key, the key is part of the request, not
// a step each caller writes around it.
type PublishOptions struct {
	// IdempotencyKey makes the publish happen once: while its result is
	// remembered, a publish with the same key publishes nothing and is
	// answered with the first one's result (Result.Suppressed); while the
	// first is under way, it fails with ErrInProgress.
	IdempotencyKey string
	// Keys is the store of the key: each caller has its own (the
	// embedded webhook workers keep theirs in memory, the queue's ack
	// records an event done; the API's outlive the node).
	Keys idempotency.Store
	// InUse is how long a claim on the key by a publish that died blocks
	// another; ResultTTL how long the result is remembered.
	InUse, ResultTTL time.Duration
	// Result makes the publish's result from the events as published
	// (their cursors set): what the key remembers. Nil makes none.
	Result func(events []*notification.Event) ([]byte, error)
}

// Result is what one publish did.
type Result struct {
	// Events are the events published (none when Suppressed).
	Events []*notification.Event
	// Suppressed is true when the idempotency key was done before: the
	// publish was not made again and Record is the first one's result.
	Suppressed bool
	// Record is the result PublishOptions.Result made, or the remembered
	// one when Suppressed.
	Record []byte
	// Unrecorded is why the key, its events published, could not be
	// recorded as done: a retry would publish them again.
	Unrecorded error
}

// Build makes the events of one publish. It is called once the
// idempotency key is claimed, so that what it does (counting a burst,
// say) is done once too; no events publishes nothing, and the key is
// still recorded as done.
type Build func(ctx context.Context) ([]*notification.Event, error)

// Publish publishes events as opts say.
func (p *Pipeline) Publish(ctx context.Context, events []*notification.Event, opts PublishOptions) (Result, error) {
	return p.Deliver(ctx, func(context.Context) ([]*notification.Event, error) { return events, nil }, opts)
}

// Send publishes notification n to each distinct user of to, each copy
// with an id of its own; the type and urgency n leaves empty take their
// defaults, and it is dated now.
//
// Under an idempotency key each copy's id is derived from the key and the
// user: an attempt that failed after its publish went out (a lost reply,
// too few replicas in time) and is retried publishes the same ids, which
// the broker recognises and publishes once. Without a key the ids are
// ULIDs.
func (p *Pipeline) Send(ctx context.Context, n *notification.Notification, to []string, opts PublishOptions) (Result, error) {
	return p.Deliver(ctx, func(context.Context) ([]*notification.Event, error) {
		c := *n
		c.Type, c.Urgency = notification.Defaults(c.Type, c.Urgency)
		c.CreatedAt = time.Now().UTC()
		users := notification.DistinctUsers(to, nil)
		ids := make([]string, len(users))
		for i, u := range users {
			if opts.IdempotencyKey != "" {
				ids[i] = notification.DerivedID("ik", opts.IdempotencyKey, u)
			} else {
				ids[i] = ulid.Make().String()
			}
		}
		return notification.NewEvents(&c, users, ids)
	}, opts)
}

// Deliver claims opts' idempotency key, if any, builds the events and
// publishes them, then records the key's result (or releases the key if
// anything failed, so that a retry can do the work).
func (p *Pipeline) Deliver(ctx context.Context, build Build, opts PublishOptions) (Result, error) {
	key, keys := opts.IdempotencyKey, opts.Keys
	var holder string
	var until time.Time // when the claim expires by itself
	if key != "" {
		if keys == nil {
			return Result{}, errors.New("delivery: idempotency key without a store")
		}
		holder, until = newHolder(), time.Now().Add(opts.InUse)
		prior, fresh, err := keys.Reserve(ctx, key, holder, opts.InUse)
		if err != nil {
			// The claim may have been made all the same (its reply lost
			// with the connection): undo it once the store answers.
			p.releases.later(keys, key, holder, until)
			return Result{}, fmt.Errorf("delivery reserve: %w", err)
		}
		if !fresh {
			if prior == nil {
				return Result{}, ErrInProgress
			}
			return Result{Suppressed: true, Record: prior}, nil
		}
	}
	res, err := p.buildAndPublish(ctx, build, opts)
	if key == "" {
		return res, err
	}
	if err != nil {
		p.releases.release(ctx, keys, key, holder, until)
		return res, err
	}
	if err := keys.Complete(context.WithoutCancel(ctx), key, res.Record, opts.ResultTTL); err != nil {
		res.Unrecorded = fmt.Errorf("delivery complete: %w", err)
	}
	return res, nil
}

func (p *Pipeline) buildAndPublish(ctx context.Context, build Build, opts PublishOptions) (Result, error) {
	events, err := build(ctx)
	if err != nil {
		return Result{}, err
	}
	if len(events) > 0 {
		if err := p.publish(ctx, events); err != nil {
			return Result{}, err
		}
	}
	res := Result{Events: events}
	if opts.Result != nil {
		if res.Record, err = opts.Result(events); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// publish records each event's push decision, then publishes the events:
// an ack can never overtake its pending push. A failed publish drops the
// decisions.
func (p *Pipeline) publish(ctx context.Context, events []*notification.Event) error {
	if p.fallback != nil {
		if err := p.fallback.Schedule(ctx, events); err != nil {
			return err
		}
	}
	if err := p.broker.Publish(ctx, events); err != nil {
		if p.fallback != nil {
			p.fallback.Unschedule(context.WithoutCancel(ctx), events)
		}
		return fmt.Errorf("delivery publish: %w", err)
	}
	p.published.Add(float64(len(events)))
	return nil
}

// Acked is the hub's ack handler: acked notifications are not pushed.
func (p *Pipeline) Acked(user string, ids []string) {
	if p.fallback != nil {
		p.fallback.Acked(user, ids)
	}
}

// Close stops the fallback, waiting for the cancellations in hand, and
// the background releases of idempotency keys (those still waiting
// expire by themselves).
func (p *Pipeline) Close() {
	if p.fallback != nil {
		p.fallback.Close()
	}
	p.releases.close()
}
