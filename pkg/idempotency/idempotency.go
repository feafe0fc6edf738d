// Package idempotency defines the store of idempotency keys: how a request
// or a redelivered event is done once however often it arrives. The server
// API keeps its Idempotency-Key results in one, the ingest workers guard
// webhook events with one; the embedded (boltstore) and Redis (redisstore)
// stores implement it, and storetest holds them to it.
package idempotency

import (
	"context"
	"time"
)

// Store remembers keys of work done or in progress.
type Store interface {
	// Reserve claims key for ttl. With fresh true the caller owns the key
	// and must Complete or Release it. Otherwise prior is the stored
	// result of completed work (non-nil, though empty if the result was),
	// or nil while another caller holds the key. Exactly one of concurrent
	// callers gets fresh; an expired key counts as absent.
	Reserve(ctx context.Context, key string, ttl time.Duration) (prior []byte, fresh bool, err error)
	// Complete stores the result of the work that reserved key, for ttl.
	Complete(ctx context.Context, key string, result []byte, ttl time.Duration) error
	// Release forgets key, so that failed work can be tried again.
	Release(ctx context.Context, key string) error
}
