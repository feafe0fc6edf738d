// Package queue defines the durable work queue that sits between a
// webhook's 200 and the workers that process it: what an item is and what
// the embedded and Redis implementations (in pkg/store) promise.
//
// An item is stored before Enqueue returns, handed to one reader at a time,
// and stays until acknowledged: an item whose reader died is handed out
// again (to any node, in Redis mode), and one that failed too often moves to
// a dead-letter list instead of blocking the queue.
package queue

import (
	"context"
	"errors"
	"time"
)

// Queue is the durable work queue: the webhook handler enqueues and reads
// its stats, the ingest workers read, acknowledge and fail items. The
// embedded (queuelog) and Redis (redisstore) queues implement it, and
// queuetest holds them to it.
type Queue interface {
	// Enqueue stores body under key before it returns; a key seen within
	// Options.DedupeTTL is not stored again and reports dup.
	Enqueue(ctx context.Context, key string, body []byte) (dup bool, err error)
	// Read hands out up to max items, waiting up to wait for the first.
	Read(ctx context.Context, max int, wait time.Duration) ([]Item, error)
	// Ack removes done items.
	Ack(ctx context.Context, ids ...string) error
	// Fail gives an item back for a later attempt, or moves it to the dead
	// letters (dead) when it has had Options.MaxAttempts.
	Fail(ctx context.Context, it Item) (dead bool, err error)
	// Stats is the number of items waiting and of dead letters.
	Stats(ctx context.Context) (depth, dead int64, err error)
}

// Item is one queued piece of work.
type Item struct {
	ID       string
	Body     []byte
	Attempts int // deliveries so far, counting this one
	Enqueued time.Time
}

// ErrUnavailable wraps failures to reach the queue's storage; callers
// answer 503 so the sender retries.
var ErrUnavailable = errors.New("queue unavailable")

// Options bound a queue's retries.
type Options struct {
	// MaxAttempts is how many deliveries an item gets before it is moved to
	// the dead letters.
	MaxAttempts int
	// RetryAfter is how long a failed or abandoned item waits before it is
	// handed out again.
	RetryAfter time.Duration
	// DedupeTTL is how long an Enqueue key is remembered.
	DedupeTTL time.Duration
}

// WithDefaults fills unset options.
func (o Options) WithDefaults() Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 30 * time.Second
	}
	if o.DedupeTTL <= 0 {
		o.DedupeTTL = 24 * time.Hour
	}
	return o
}
