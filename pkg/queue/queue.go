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
	"errors"
	"time"
)

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
