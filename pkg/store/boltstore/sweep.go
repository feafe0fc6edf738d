package boltstore

import "context"

// sweepChunk is how many keys one Sweep transaction visits, so other
// writers are never held up for long behind a sweep.
const sweepChunk = 256

// Sweep deletes expired idempotency keys and webhook dedupe keys. It works
// in short transactions and stops early when ctx ends.
func (s *Store) Sweep(ctx context.Context) error {
	now := s.now()
	if err := s.sweepIdempotency(ctx, now); err != nil {
		return err
	}
	return s.sweepDedupe(ctx, now)
}
