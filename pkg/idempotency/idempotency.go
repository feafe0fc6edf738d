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
//
// A claim names its holder, a value unique to the attempt that made it,
// so that a release can never free a claim another attempt holds: a
// release sent long after its claim, when the claim was lost with a Redis
// primary and another attempt has claimed the key since, does nothing.
type Store interface {
	// Reserve claims key for ttl on behalf of holder. With fresh true the
	// caller owns the key and must Complete or Release it. Otherwise prior
	// is the stored result of completed work (non-nil, though empty if the
	// result was), or nil while another caller holds the key. Exactly one
	// of concurrent callers gets fresh; an expired key counts as absent.
	Reserve(ctx context.Context, key, holder string, ttl time.Duration) (prior []byte, fresh bool, err error)
	// Complete stores the result of the work that reserved key, for ttl.
	Complete(ctx context.Context, key string, result []byte, ttl time.Duration) error
	// Release forgets key if holder still holds it, so that failed work
	// can be tried again; a completed key, or one another holder claimed,
	// stays. It is safe after a Reserve whose outcome is unknown (an
	// error): if that claim was made, it is undone.
	Release(ctx context.Context, key, holder string) error
}
